"""``Assistant``: an intent classifier, an FAQ index and an out-of-scope detector behind one
reply policy (``policy.py``), saved as one bundle.

Building (``fit``):

1. the intent classifier: each candidate strategy (default classic, frozen and their weighted
   fusion) is a ``TextClassifier`` trained on the intents; the best in-scope validation
   accuracy is kept (ties: the earlier candidate);
2. the FAQ index: every FAQ question and paraphrase embedded with the backbone (mean-pooled,
   unit length) in a faiss index (``ronghe/search.py``, shared with the recommender); its similarity threshold is chosen on
   validation: FAQ-labelled validation messages (or, without them, each paraphrase matched
   against the entry's other ones) are the matches to keep, out-of-scope messages the ones to
   refuse; the threshold with the best F1 of correct answers wins;
3. the out-of-scope detector: max-probability, Mahalanobis and kNN distances on the
   embeddings, Mahalanobis on the classifier's own fine-tuned encoder (when it has one), and an
   explicit ``oos`` class when out-of-scope examples are given, compared on validation
   (``oos.py``);
4. the fusion of classifier and retrieval: an FAQ entry whose answer is an intent's answer
   gives the same reply, so its questions vote for that intent. A message's intent scores are
   ``(1 - w) * classifier probabilities + w * retrieval votes`` (the ``retrieval_k`` nearest
   FAQ questions, each weighted ``exp((similarity - best) / retrieval_temperature)``, shared out
   over the intents their entries answer for; unlinked entries' votes count in the total but for
   no intent). ``w`` is chosen on the in-scope validation messages from 0 (the classifier
   alone) to 0.5; a validation message's own copy among the FAQ questions is left out of its
   vote, so an FAQ made from the same questions does not flatter retrieval.

The bundle (``save``)::

    assistant/
      ronghe.json            task "assistant": config, intents, answers, FAQ entries,
                             thresholds, chosen methods, validation report, checksums
      arrays.safetensors     FAQ question embeddings; the distance scores' arrays
      members/intent/        the intent classifier (a TextClassifier bundle)
      members/oos/           the classifier with an explicit oos class (when chosen)
      members/ner/           the NER bundle filling {slot}s (when given)
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from ... import backbones, bundle
from ... import data as core_data
from ...errors import BundleError, ConfigError, DataError
from ...log import info, warn
from . import oos as oos_mod
from .config import OOS_LABEL, OOS_METHODS, AssistConfig, build as build_config
from .data import FaqEntry, Material, check_names
from .policy import Signals, Thresholds, decide
from ...search import VectorIndex, normalise

TASK = "assistant"
FUSIONS = ("weighted",)  # candidates built here from the other candidates
MEMBERS = ("classic", "frozen", "finetune")  # the candidates a fusion here can take


def _dataset(texts: list[str], labels: list[str]) -> core_data.Dataset:
    return core_data.from_texts(texts, labels)


class Assistant:
    """``Assistant(config).fit(intents, faq, oos=..., valid=...)``; ``reply(message)``."""

    def __init__(self, config: AssistConfig | dict | None = None, **options):
        if isinstance(config, AssistConfig):
            config = config.model_dump()
        self.config = build_config({**(config or {}), **options})

    # -- building ---------------------------------------------------------------------------

    def fit(self, intents: Material, faq: list[FaqEntry] | None = None, oos: list[str] | None = None,
            valid: Material | None = None, answers: dict[str, str] | None = None,
            ner=None) -> "Assistant":
        cfg = self.config
        start = time.perf_counter()
        self.intents_ = sorted(set(intents.labels))
        if len(self.intents_) < 2:
            raise DataError(f"the intents data has {len(self.intents_)} intent(s); an assistant "
                            "needs at least two (add examples of more intents)")
        if set(cfg.oos_methods) == {"mahalanobis_tuned"} and "finetune" not in cfg.candidates:
            raise ConfigError("oos_methods lists only mahalanobis_tuned, which needs a "
                              "fine-tuned intent classifier, but no candidate fine-tunes (add "
                              "finetune to the candidates, or list another method, e.g. maxprob)")
        faq = list(faq or [])
        check_names(self.intents_, faq, "FAQ")
        self.faq_ = {e.id: e for e in faq}
        self.answers_ = {**intents.answers, **(answers or {})}
        unknown = sorted(set(self.answers_) - set(self.intents_))
        if unknown:
            raise DataError(f"answers given for intents that have no examples: "
                            f"{', '.join(unknown[:10])}; check the names")
        self.notes_ = list(intents.notes)
        oos_train = list(oos or []) + list(intents.oos)
        train = _dataset(intents.texts, intents.labels)
        v_in, v_in_labels, v_faq, v_faq_ids, v_oos = self._validation(train, valid, oos_train)
        if valid is None:
            train = self._train_part
        oos_train = self._oos_train
        valid_in = _dataset(v_in, v_in_labels)

        self.backbone_ = backbones.resolve(cfg.model)
        self._embedder = None
        # 1. the intent classifier
        fitted: dict[str, object] = {}
        scores: dict[str, float] = {}
        for name in cfg.candidates:
            est = self._train(name, train, valid_in, fitted)
            pred = est.predict(v_in)
            scores[name] = float(np.mean([str(p) == y for p, y in zip(pred, v_in_labels)]))
            fitted[name] = est
            info("assistant: intent classifier '%s' in-scope validation accuracy %.4f", name,
                 scores[name])
        self.strategy_ = max(cfg.candidates, key=lambda n: (round(scores[n], 9),
                                                            -cfg.candidates.index(n)))
        self.classifier_ = fitted[self.strategy_]
        # 2. embeddings, FAQ index
        E_train = self.embed(train.texts)
        self._build_faq()
        # 3. out-of-scope scores on validation
        v_all = v_in + v_oos
        is_oos = np.r_[np.zeros(len(v_in), bool), np.ones(len(v_oos), bool)]
        E_valid = self.embed(v_all)
        P_valid = self._proba(self.classifier_, v_all)
        label_ids = {c: i for i, c in enumerate(self._classes())}
        y_train = np.array([label_ids[str(y)] for y in train.labels])
        self.maha_ = self.maha_tuned_ = self.knn_ = self.oos_classifier_ = None
        candidates: dict[str, np.ndarray] = {}
        methods = list(cfg.oos_methods)
        combined_only = methods == ["combined"]  # then of every score there is
        if combined_only:
            methods = list(OOS_METHODS)
        if not is_oos.any() and cfg.oos_method_without_examples not in methods:
            methods.append(cfg.oos_method_without_examples)
        if "maxprob" in methods:
            candidates["maxprob"] = oos_mod.maxprob(P_valid)
        if "mahalanobis" in methods:
            self.maha_ = oos_mod.Mahalanobis.fit(E_train, y_train, len(label_ids))
            candidates["mahalanobis"] = self.maha_.score(E_valid)
        tuned = self._tuned()
        if "mahalanobis_tuned" in methods and tuned is not None:
            self.maha_tuned_ = oos_mod.Mahalanobis.fit(tuned.embed(list(train.texts)), y_train,
                                                       len(label_ids))
            candidates["mahalanobis_tuned"] = self.maha_tuned_.score(tuned.embed(v_all))
        if "knn" in methods:
            self.knn_ = oos_mod.Knn(E_train, cfg.knn_k, cfg.search, cfg.hnsw_above)
            candidates["knn"] = self.knn_.score(E_valid)
        if "oos_class" in methods and oos_train and is_oos.any():
            with_oos = _dataset(list(train.texts) + oos_train,
                                [str(y) for y in train.labels] + [OOS_LABEL] * len(oos_train))
            valid_oos = _dataset(v_all, v_in_labels + [OOS_LABEL] * len(v_oos))
            self.oos_classifier_ = self._train(self.strategy_, with_oos, valid_oos, {})
            candidates["oos_class"] = self._p_oos(self._proba(self.oos_classifier_, v_all))
        if not candidates:
            raise ConfigError(
                f"none of the out-of-scope methods {', '.join(cfg.oos_methods)} applies to this "
                f"assistant: mahalanobis_tuned needs a fine-tuned intent classifier (the chosen "
                f"one is '{self.strategy_}'); list another method too, e.g. maxprob")
        self.combined_ = None
        if "combined" in methods and len(candidates) >= 2 and is_oos.any():
            self.combined_ = oos_mod.Combined.fit({n: c[~is_oos] for n, c in candidates.items()})
            candidates["combined"] = self.combined_.score(candidates)
            if combined_only:
                candidates = {"combined": candidates["combined"]}
        self._all_oos = {"maha": self.maha_, "maha_tuned": self.maha_tuned_, "knn": self.knn_,
                         "clf": self.oos_classifier_, "combined": self.combined_}
        method, threshold, report = oos_mod.choose(
            candidates, is_oos, cfg.oos_method_without_examples, cfg.in_scope_rejection,
            share=cfg.expected_oos_share, target_precision=cfg.oos_target_precision)
        self.oos_method_, self.oos_threshold_ = method, threshold
        used = set(self.combined_.parts) if method == "combined" else {method}
        if "mahalanobis" not in used:
            self.maha_ = None
        if "mahalanobis_tuned" not in used:
            self.maha_tuned_ = None
        if "knn" not in used:
            self.knn_ = None
        if "oos_class" not in used:
            self.oos_classifier_ = None
        if method != "combined":
            self.combined_ = None
        # 4. the FAQ threshold
        self.faq_threshold_, faq_report = self._faq_threshold(v_faq, v_faq_ids, v_oos)
        # 5. the weight of retrieval's vote in the intent scores
        n_in = len(v_in)
        self.retrieval_weight_, fusion_report = self._choose_weight(
            P_valid[:n_in], E_valid[:n_in], v_in, np.array([label_ids[y] for y in v_in_labels]))
        self.ner_ = ner
        self.train_seconds_ = time.perf_counter() - start
        self.metrics_ = {
            "valid": {"intent_accuracy": scores[self.strategy_], "n_in_scope": len(v_in),
                      "n_oos": len(v_oos), "n_faq": len(v_faq)},
            "candidates": {n: round(s, 5) for n, s in scores.items()},
            "oos": report, "faq": faq_report, "fusion": fusion_report,
            "train_seconds": round(self.train_seconds_, 2)}
        self.data_ = {"n_intent_examples": len(train), "n_intents": len(self.intents_),
                      "n_faq_entries": len(self.faq_), "n_faq_questions": int(len(self._faq_ids)),
                      "n_oos_train": len(oos_train), "notes": self.notes_}
        info("assistant: classifier %s, out-of-scope %s (threshold %.4f), FAQ threshold %.4f, "
             "retrieval weight %.2f", self.strategy_, method, threshold, self.faq_threshold_,
             self.retrieval_weight_)
        return self

    def _validation(self, train, valid: Material | None, oos_train: list[str]):
        """(in-scope texts, their intents, FAQ texts, their ids, OOS texts) for validation;
        sets ``_train_part`` (intents left for training) and ``_oos_train``."""
        cfg = self.config
        rng = np.random.default_rng(cfg.seed)
        self._oos_train = list(oos_train)
        if valid is None:
            self._train_part, held = core_data.split(train, cfg.valid_fraction, cfg.seed)
            v_texts, v_labels = list(held.texts), [str(y) for y in held.labels]
            v_oos: list[str] = []
            self.notes_.append(f"validation: {len(held)} intent examples held out "
                               f"({cfg.valid_fraction:.0%}, stratified, seed {cfg.seed})")
        else:
            v_texts, v_labels, v_oos = list(valid.texts), list(valid.labels), list(valid.oos)
        if not v_oos and len(oos_train) >= 2:
            order = rng.permutation(len(oos_train))
            n = max(1, int(round(len(oos_train) * cfg.oos_holdout)))
            v_oos = [oos_train[i] for i in order[:n]]
            self._oos_train = [oos_train[i] for i in order[n:]]
            self.notes_.append(f"validation: {n} of {len(oos_train)} out-of-scope examples "
                               "held out (no out-of-scope rows in the validation data)")
        known = set(self.intents_)
        in_idx = [i for i, y in enumerate(v_labels) if y in known]
        faq_idx = [i for i, y in enumerate(v_labels) if y in self.faq_]
        unknown = sorted({y for y in v_labels if y not in known and y not in self.faq_})
        if unknown:
            raise DataError(f"validation labels that are neither intents nor FAQ ids nor "
                            f"'{OOS_LABEL}': {', '.join(unknown[:10])}; fix or remove those rows")
        if not in_idx:
            raise DataError("the validation data has no in-scope intent examples")
        return ([v_texts[i] for i in in_idx], [v_labels[i] for i in in_idx],
                [v_texts[i] for i in faq_idx], [v_labels[i] for i in faq_idx], v_oos)

    def _train(self, name: str, train, valid, fitted: dict):
        """A fitted ``TextClassifier`` of strategy ``name``; ``weighted`` fuses every other
        candidate (``frozen`` and ``classic`` added when there are fewer than two), taking them
        from ``fitted`` or training them here."""
        from ...classifier import TextClassifier
        from ...fusion.weighted import Weighted

        cfg = self.config
        if name in FUSIONS:
            members = [n for n in cfg.candidates if n in MEMBERS]
            for n in ("frozen", "classic"):
                if len(members) < 2 and n not in members:
                    members.append(n)
            ests = [fitted.get(n) or self._train(n, train, valid, fitted) for n in members]
            for n, e in zip(members, ests):
                fitted.setdefault(n, e)
            inner = Weighted.from_members([e.strategy_ for e in ests], valid)
            inner.config.model = cfg.model
            est = TextClassifier.from_strategy(
                inner, {"strategy": "weighted", "model": cfg.model, "seed": cfg.seed,
                        "options": {"members": members}}, data=ests[0].data_)
            est.metrics_ = {"valid": est._valid_metrics(valid), "weights": inner.weights}
            return est
        options = dict(cfg.candidate_options.get(name, {}))
        est = TextClassifier(strategy=name, model=cfg.model if name != "classic" else None,
                             seed=cfg.seed, options=options or None)
        return est.fit(train, valid)

    def _classes(self) -> list[str]:
        return [str(c) for c in self.classifier_.classes_]

    def _tuned(self):
        """The intent classifier's fine-tuned text encoder (the strategy, or a fusion's member,
        that trained the network and embeds texts), or None."""
        s = self.classifier_.strategy_
        return next((m for m in [s, *getattr(s, "members", [])]
                     if getattr(m, "trains_network", False) and hasattr(m, "embed")), None)

    @staticmethod
    def _proba(est, texts: list[str]) -> np.ndarray:
        return est.predict_proba(list(texts))

    def _p_oos(self, proba: np.ndarray) -> np.ndarray:
        classes = [str(c) for c in self.oos_classifier_.classes_]
        return proba[:, classes.index(OOS_LABEL)]

    def embedder(self):
        if getattr(self, "_embedder", None) is None:
            from ...modeling import Embedder

            # the frozen strategy's settings, so a frozen classifier finds the message's
            # embedding in the shared per-text cache instead of encoding it a second time
            self._embedder = Embedder(self.backbone_.path, self.backbone_.sha256, batch_size=64,
                                      max_length=256)
        return self._embedder

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 1), np.float32)
        return normalise(self.embedder()(list(texts)))

    def _build_faq(self, vectors: np.ndarray | None = None) -> None:
        ids, questions = [], []
        for e in self.faq_.values():
            for q in e.questions:
                ids.append(e.id)
                questions.append(q)
        self._faq_ids, self._faq_questions = ids, questions
        self._faq_class, self._faq_intent = np.zeros(0, np.int64), {}
        if not questions:
            self._faq_vectors, self._faq_index = np.zeros((0, 1), np.float32), None
            return
        self._faq_vectors = self.embed(questions) if vectors is None else vectors
        self._faq_index = VectorIndex(self._faq_vectors, self.config.search,
                                      self.config.hnsw_above)
        self._faq_intent = self._links()
        self._faq_class = np.array([self._faq_intent.get(f, -1) for f in self._faq_ids],
                                   dtype=np.int64)

    def faq_search(self, E: np.ndarray, k: int) -> list[list[tuple[str, float, str]]]:
        """Per message: up to ``k`` FAQ entries (id, similarity, matched question), best
        first, each entry once (its best-matching paraphrase)."""
        if self._faq_index is None:
            return [[] for _ in range(len(E))]
        sims, idx = self._faq_index.search(E, min(len(self._faq_ids), k * 4))
        out = []
        for srow, irow in zip(sims, idx):
            seen, hits = set(), []
            for s, i in zip(srow, irow):
                if i < 0 or self._faq_ids[i] in seen:
                    continue
                seen.add(self._faq_ids[i])
                hits.append((self._faq_ids[i], float(s), self._faq_questions[i]))
                if len(hits) == k:
                    break
            out.append(hits)
        return out

    def all_oos_scores(self, messages: list[str]) -> dict[str, np.ndarray]:
        """Every out-of-scope score compared at build time, on ``messages`` (only in the process
        that built the assistant: the bundle keeps the chosen one's state alone)."""
        P, E = self._proba(self.classifier_, messages), self.embed(messages)
        keep = self._all_oos
        out = {"maxprob": oos_mod.maxprob(P)}
        if keep["maha"] is not None:
            out["mahalanobis"] = keep["maha"].score(E)
        if keep["maha_tuned"] is not None:
            out["mahalanobis_tuned"] = keep["maha_tuned"].score(self._tuned().embed(messages))
        if keep["knn"] is not None:
            out["knn"] = keep["knn"].score(E)
        if keep["clf"] is not None:
            classes = [str(c) for c in keep["clf"].classes_]
            out["oos_class"] = self._proba(keep["clf"], messages)[:, classes.index(OOS_LABEL)]
        if keep["combined"] is not None:
            out["combined"] = keep["combined"].score(out)
        return out

    def _faq_threshold(self, v_faq: list[str], v_faq_ids: list[str], v_oos: list[str]):
        cfg = self.config
        if not self._faq_ids:
            return 2.0, {"rule": "no FAQ entries", "threshold": 2.0}
        if v_faq:
            hits = self.faq_search(self.embed(v_faq), 1)
            pos_sims = np.array([h[0][1] for h in hits])
            pos_ok = np.array([h[0][0] == y for h, y in zip(hits, v_faq_ids)])
            source = f"{len(v_faq)} FAQ-labelled validation messages"
        else:  # each paraphrase against the other questions: its own entry's should win
            multi = [i for i, fid in enumerate(self._faq_ids) if self._faq_ids.count(fid) > 1]
            if multi:
                sims, idx = self._faq_index.search(self._faq_vectors[multi],
                                                   min(len(self._faq_ids), 2))
                pos_sims, pos_ok = [], []
                for j, i in enumerate(multi):
                    other = [(s, p) for s, p in zip(sims[j], idx[j]) if p != i and p >= 0]
                    pos_sims.append(other[0][0])
                    pos_ok.append(self._faq_ids[other[0][1]] == self._faq_ids[i])
                pos_sims, pos_ok = np.array(pos_sims), np.array(pos_ok)
                source = f"{len(multi)} FAQ paraphrases matched against the others"
            else:
                pos_sims, pos_ok = np.zeros(0), np.zeros(0, bool)
                source = "no FAQ paraphrases or FAQ-labelled validation messages"
        neg = (np.array([h[0][1] for h in self.faq_search(self.embed(v_oos), 1)])
               if v_oos else np.zeros(0))
        report = {"positives": source, "n_positive": int(len(pos_sims)), "n_negative": len(neg)}
        if pos_ok.any() and (len(neg) or (~pos_ok).any()):
            sims = np.r_[pos_sims, neg]
            ok = np.r_[pos_ok, np.zeros(len(neg), bool)]
            thr, prf = oos_mod.best_threshold(sims, ok)
            report.update(rule="best F1 of correct FAQ answers on validation", **prf)
        elif pos_ok.any():
            thr = float(np.quantile(pos_sims[pos_ok], cfg.faq_in_scope_rejection))
            report["rule"] = (f"no wrong matches on validation: the threshold refuses "
                              f"{cfg.faq_in_scope_rejection:.0%} of the correct ones")
        elif len(neg):
            thr = float(np.quantile(neg, 1 - cfg.faq_in_scope_rejection)) + 1e-6
            report["rule"] = (f"no FAQ matches to keep on validation: the threshold lets "
                              f"{cfg.faq_in_scope_rejection:.0%} of out-of-scope messages through")
        else:
            thr = 1.0
            report["rule"] = ("nothing to choose on: FAQ answers only exact matches. Give "
                              "paraphrases (several rows per FAQ id), FAQ-labelled validation "
                              "rows or out-of-scope examples")
            warn("assistant: %s", report["rule"])
        report["threshold"] = thr
        return thr, report

    def _links(self) -> dict[str, int]:
        """FAQ entry id -> the index of the classifier class it answers for (the entry's answer
        is that intent's answer, and no other intent's); unlinked entries are left out."""
        by_answer: dict[str, list[str]] = {}
        for intent, a in self.answers_.items():
            by_answer.setdefault(a.strip(), []).append(intent)
        ids = {c: i for i, c in enumerate(self._classes())}
        entry = {}
        for e in self.faq_.values():
            owners = by_answer.get(e.answer.strip(), [])
            if len(owners) == 1 and owners[0] in ids:
                entry[e.id] = ids[owners[0]]
        return entry

    def _votes(self, E: np.ndarray, leave_out: list[str] | None = None) -> np.ndarray:
        """Per message, retrieval's vote over the classifier's classes (rows sum to at most 1:
        the votes of unlinked FAQ entries are in the total but go to no intent). With
        ``leave_out`` (the messages' texts), a FAQ question equal to its message is skipped."""
        cfg = self.config
        links = self._faq_class
        n_classes = len(self._classes())
        V = np.zeros((len(E), n_classes))
        if self._faq_index is None or not len(E) or (links < 0).all():
            return V
        # left-out neighbours: the FAQ questions equal to the message (one per entry at most)
        extra = 0 if leave_out is None else Counter(self._faq_questions).most_common(1)[0][1]
        sims, idx = self._faq_index.search(E, min(len(self._faq_ids), cfg.retrieval_k + extra))
        for i in range(len(E)):
            keep = idx[i] >= 0
            if leave_out is not None:
                text = leave_out[i].strip()
                keep &= np.array([j >= 0 and self._faq_questions[j] != text for j in idx[i]])
            s, j = sims[i][keep][: cfg.retrieval_k], idx[i][keep][: cfg.retrieval_k]
            if not len(s):
                continue
            w = np.exp((s.astype(np.float64) - s[0]) / cfg.retrieval_temperature)
            c = links[j]
            np.add.at(V[i], c[c >= 0], w[c >= 0])
            V[i] /= w.sum()
        return V

    def _choose_weight(self, P, E, texts: list[str], y: np.ndarray) -> tuple[float, dict]:
        cfg = self.config
        linked = len(self._faq_intent)
        report: dict = {"linked_entries": linked}
        if not linked:
            report["rule"] = ("no FAQ entry shares its answer with an intent: the classifier "
                              "alone chooses the intent")
            return 0.0, report
        V = self._votes(E, leave_out=texts)
        grid = ([0.0, 0.1, 0.2, 0.3, 0.4, 0.5] if cfg.retrieval_weight == "auto"
                else [float(cfg.retrieval_weight)])
        acc = {w: float((((1 - w) * P + w * V).argmax(1) == y).mean()) for w in grid}
        best = max(grid, key=lambda w: (round(acc[w], 9), -w))
        report.update(valid_accuracy={f"{w:g}": round(a, 5) for w, a in acc.items()},
                      weight=best, rule=("the weight with the best in-scope validation accuracy "
                                         "(ties: the smaller)" if len(grid) > 1 else "as given"))
        return best, report

    # -- replying -----------------------------------------------------------------------------

    def signals(self, messages: list[str]) -> tuple[list[Signals], np.ndarray, np.ndarray]:
        """The models' view of each message; also the classifier's probabilities and the
        embeddings (for evaluation)."""
        self._check_fitted()
        E = self.embed(messages)
        P = self._proba(self.classifier_, messages)
        scores = self.oos_scores(messages, P, E)
        w = self.retrieval_weight_
        V = self._votes(E) if w > 0 else None
        F = P if V is None else (1 - w) * P + w * V  # the intent scores replies use
        faq = self.faq_search(E, self.config.faq_top_k)
        entities = self._entities(messages)
        classes = self._classes()
        out = []
        for i in range(len(messages)):
            order = np.argsort(-F[i])[:2]
            fusion = None if V is None else {
                "retrieval_weight": w, "classifier": round(float(P[i, order[0]]), 4),
                "retrieval": round(float(V[i, order[0]]), 4),
                "classifier_top": classes[int(P[i].argmax())]}
            out.append(Signals([(classes[j], float(F[i, j])) for j in order], float(scores[i]),
                               faq[i], entities[i], fusion,
                               classes[self._faq_intent[faq[i][0][0]]]
                               if faq[i] and faq[i][0][0] in self._faq_intent else None))
        return out, P, E

    def oos_scores(self, messages, P, E) -> np.ndarray:
        if self.oos_method_ == "combined":
            c = self.combined_
            return c.score({p: self._oos_score(p, messages, P, E) for p in c.parts})
        return self._oos_score(self.oos_method_, messages, P, E)

    def _oos_score(self, m: str, messages, P, E) -> np.ndarray:
        if m == "maxprob":
            return oos_mod.maxprob(P)
        if m == "mahalanobis":
            return self.maha_.score(E)
        if m == "mahalanobis_tuned":
            return self.maha_tuned_.score(self._tuned().embed(list(messages)))
        if m == "knn":
            return self.knn_.score(E)
        return self._p_oos(self._proba(self.oos_classifier_, messages))

    def _entities(self, messages: list[str]) -> list[dict[str, str]]:
        if self.ner_ is None:
            return [{} for _ in messages]
        out = []
        for ents in self.ner_.predict(list(messages)):
            d: dict[str, str] = {}
            for e in ents:
                d.setdefault(str(e["label"]).lower(), e["text"])
            out.append(d)
        return out

    def thresholds(self) -> Thresholds:
        return Thresholds(self.oos_method_, self.oos_threshold_, self.faq_threshold_)

    def reply_many(self, messages: list[str]) -> list[dict]:
        sigs, _, _ = self.signals(list(messages))
        answers = {e.id: e.answer for e in self.faq_.values()}
        return [decide(s, self.thresholds(), self.config, self.answers_, answers) for s in sigs]

    def reply(self, message: str) -> dict:
        if not isinstance(message, str):
            raise DataError(f"a message is a string, not {type(message).__name__}")
        return self.reply_many([message])[0]

    def _check_fitted(self) -> None:
        if not hasattr(self, "classifier_"):
            raise ConfigError("this Assistant is not built yet: call fit() or assist.load()")

    # -- the bundle -----------------------------------------------------------------------------

    def save(self, path) -> Path:
        self._check_fitted()
        arrays = {"faq.vectors": self._faq_vectors} if self._faq_ids else {}
        for prefix, maha in (("mahalanobis", self.maha_), ("mahalanobis_tuned", self.maha_tuned_)):
            if maha is not None:
                arrays.update(maha.to_arrays(prefix))
        if self.knn_ is not None:
            arrays["knn.vectors"] = self.knn_.index.vectors
        meta = {"intents": self.intents_, "answers": self.answers_,
                "faq": [{"id": e.id, "questions": e.questions, "answer": e.answer}
                        for e in self.faq_.values()],
                "strategy": self.strategy_, "oos_method": self.oos_method_,
                "oos_threshold": self.oos_threshold_, "faq_threshold": self.faq_threshold_,
                "retrieval_weight": self.retrieval_weight_,
                "oos_combined": self.combined_.to_json() if self.combined_ else None}
        state = bundle.State(meta=meta, arrays=arrays)
        with tempfile.TemporaryDirectory() as tmp:
            members = {"intent": self.classifier_, "oos": self.oos_classifier_, "ner": self.ner_}
            for name, est in members.items():
                if est is None:
                    continue
                src = getattr(est, "bundle_path_", None)
                if src is None:
                    src = est.save(Path(tmp) / name)
                state.add_dir(f"members/{name}", Path(src))
            header = {"task": TASK, "strategy": "assist", "labels": self.intents_,
                      "backbone": self.backbone_.to_json(),
                      "config": self.config.model_dump(mode="json"), "metrics": self.metrics_,
                      "data": self.data_}
            return bundle.save(path, header, state)

    @classmethod
    def load(cls, path) -> "Assistant":
        from ...estimator import load as load_estimator

        reader = bundle.open_app(path, TASK, "an assistant",
                                 "build one with `ronghe assist build`")
        m = reader.manifest
        self = cls(m.config)
        meta = reader.meta
        self.backbone_ = backbones.verify(m.backbone_json(), f"assistant {path}")
        self._embedder = None
        self.intents_ = list(meta["intents"])
        self.answers_ = dict(meta["answers"])
        self.faq_ = {e["id"]: FaqEntry(e["id"], list(e["questions"]), e["answer"])
                     for e in meta["faq"]}
        self.strategy_ = meta["strategy"]
        self.oos_method_ = meta["oos_method"]
        self.oos_threshold_ = float(meta["oos_threshold"])
        self.faq_threshold_ = float(meta["faq_threshold"])
        self.retrieval_weight_ = float(meta.get("retrieval_weight", 0.0))  # older bundles: 0
        arrays = reader.arrays()
        members = reader.root / "members"
        self.classifier_ = load_estimator(members / "intent")
        self.oos_classifier_ = (load_estimator(members / "oos") if (members / "oos").is_dir()
                                else None)
        self.ner_ = load_estimator(members / "ner") if (members / "ner").is_dir() else None
        self.maha_ = oos_mod.Mahalanobis.from_arrays(arrays, "mahalanobis")
        self.maha_tuned_ = (oos_mod.Mahalanobis.from_arrays(arrays, "mahalanobis_tuned")
                            if self._tuned() is not None else None)
        self.knn_ = (oos_mod.Knn(arrays["knn.vectors"], self.config.knn_k, self.config.search,
                                 self.config.hnsw_above) if "knn.vectors" in arrays else None)
        comb = meta.get("oos_combined")
        self.combined_ = (oos_mod.Combined(comb["parts"], comb["mean"], comb["std"])
                          if comb else None)
        needs = {"mahalanobis": self.maha_, "mahalanobis_tuned": self.maha_tuned_,
                 "knn": self.knn_, "oos_class": self.oos_classifier_,
                 "combined": self.combined_, "maxprob": True}
        used = ([self.oos_method_] + (self.combined_.parts if self.combined_ else []))
        for part in used:
            if needs.get(part) is None:
                raise BundleError(f"assistant {path}: its out-of-scope method '{part}' has no "
                                  "saved state; the bundle is damaged")
        if self.faq_ and "faq.vectors" not in arrays:
            raise BundleError(f"assistant {path}: FAQ entries without their vectors; the bundle "
                              "is damaged")
        self._build_faq(arrays.get("faq.vectors"))
        if len(self._faq_ids) != len(self._faq_vectors):
            raise BundleError(f"assistant {path}: {len(self._faq_ids)} FAQ questions but "
                              f"{len(self._faq_vectors)} vectors; the bundle is damaged")
        self.metrics_, self.data_ = dict(m.metrics), dict(m.data)
        self.bundle_path_ = reader.root
        self.manifest_ = m
        return self


def load(path) -> Assistant:
    return Assistant.load(path)

