"""``AssistConfig``: every knob of an assistant build, validated (pydantic), kept in the bundle."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ...errors import ConfigError

OOS_LABEL = "oos"
OOS_METHODS = ("maxprob", "mahalanobis", "mahalanobis_tuned", "knn", "oos_class", "combined")


class AssistConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str = Field("minilm", description="backbone for the FAQ index, the distance scores "
                                             "and the frozen classifier")
    candidates: list[Literal["classic", "frozen", "weighted", "finetune", "stack"]] = Field(
        ["classic", "frozen", "weighted"], min_length=1,
        description="intent classifiers tried, the best validation accuracy kept (ties: the "
                    "earlier). 'weighted' fuses all the others (weights chosen on validation).")
    candidate_options: dict[str, dict[str, Any]] = Field(
        {}, description="per candidate: its strategy options, e.g. {finetune: {epochs: 2}}")
    oos_methods: list[Literal["maxprob", "mahalanobis", "mahalanobis_tuned", "knn", "oos_class",
                              "combined"]] = Field(
        list(OOS_METHODS), min_length=1,
        description="out-of-scope scores compared on validation (mahalanobis_tuned only when "
                    "the intent classifier has a fine-tuned encoder; oos_class only with OOS "
                    "training examples; combined = the mean of the other listed scores, "
                    "standardised - of every score when it is listed alone)")
    oos_target_precision: float | None = Field(
        None, gt=0, lt=1, description="choose the out-of-scope threshold with the most recall "
                                      "whose precision on validation reaches this (default: the "
                                      "best F1)")
    expected_oos_share: float | None = Field(
        None, gt=0, lt=1, description="the share of out-of-scope messages expected in live "
                                      "traffic: validation is reweighted to it before precision "
                                      "and F1 are computed (default: validation's own share)")
    oos_method_without_examples: Literal["maxprob", "mahalanobis", "knn"] = Field(
        "mahalanobis", description="the score used when validation has no OOS examples")
    in_scope_rejection: float = Field(
        0.05, gt=0, lt=0.5, description="without OOS validation examples: the threshold hands "
                                        "off this share of in-scope validation messages")
    oos_holdout: float = Field(0.5, gt=0, lt=1, description="share of the OOS examples held out "
                                                            "for validation when --valid has none")
    knn_k: int = Field(5, ge=1, le=100, description="neighbours averaged by the knn score")
    faq_top_k: int = Field(5, ge=1, le=50)
    search: Literal["auto", "flat", "hnsw"] = Field(
        "auto", description="vector search (faiss): flat = exact inner product; hnsw = a graph, "
                            "approximate; auto = flat up to hnsw_above vectors")
    hnsw_above: int = Field(200_000, ge=1, description="vectors above which auto uses HNSW")
    faq_in_scope_rejection: float = Field(
        0.05, gt=0, lt=0.5, description="without negative FAQ validation examples: the FAQ "
                                        "threshold rejects this share of correct matches")
    retrieval_weight: Annotated[float, Field(ge=0, le=1)] | Literal["auto"] = Field(
        "auto", description="weight of the FAQ retrieval's vote in the intent scores "
                            "(weighted late fusion with the classifier's probabilities; only FAQ "
                            "entries whose answer is an intent's vote); auto = chosen on "
                            "validation from 0 to 0.5 (0 = the classifier alone)")
    retrieval_k: int = Field(10, ge=1, le=100, description="nearest FAQ questions that vote")
    retrieval_temperature: float = Field(
        0.05, gt=0, le=1, description="a neighbour's vote is exp((similarity - best) / this)")
    ambiguity_ratio: float = Field(
        0.75, gt=0, le=1, description="runner-up probability at least this share of the top "
                                      "one's: ask which of the two is meant")
    ambiguity_min: float = Field(0.2, ge=0, le=1, description="... and at least this probability")
    fallback_message: str = ("I'm not sure I can help with that, so I'm passing your message to "
                             "a colleague who will get back to you.")
    clarify_message: str = "Do you mean {first} or {second}?"
    intent_message: str = Field("I understand you need help with: {intent}.",
                                description="reply for an intent without an answer")
    missing_slot_message: str = "Could you tell me your {slot}?"
    seed: int = 0
    valid_fraction: float = Field(0.1, gt=0, le=0.5, description="held out of the intents when "
                                                                  "no --valid is given")


def build(values: dict[str, Any]) -> AssistConfig:
    try:
        return AssistConfig.model_validate(values)
    except ValidationError as e:
        lines = [f"{'.'.join(str(x) for x in err['loc']) or 'config'}: {err['msg']}"
                 for err in e.errors()]
        raise ConfigError("invalid assistant option(s):\n  " + "\n  ".join(lines)) from None
