// The assistant's chat page: no framework, no CDN - everything comes from the service.
(function () {
  "use strict";
  const log = document.getElementById("log");
  const form = document.getElementById("form");
  const input = document.getElementById("message");
  const send = document.getElementById("send");
  const status = document.getElementById("status");
  const keybar = document.getElementById("keybar");
  const conversationId = "web-" + newId();
  let info = { intents: [], faq: [] };

  function newId() {
    const a = new Uint8Array(12);
    crypto.getRandomValues(a);
    return Array.from(a, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function headers() {
    const h = { "Content-Type": "application/json" };
    const key = sessionStorage.getItem("ronghe-key");
    if (key) h["X-API-Key"] = key;
    return h;
  }

  async function call(method, path, body) {
    const res = await fetch(path, { method, headers: headers(),
                                    body: body ? JSON.stringify(body) : undefined });
    const data = await res.json().catch(() => ({}));
    if (res.status === 401) keybar.hidden = false;
    if (!res.ok) throw new Error((data.error && data.error.message) || ("HTTP " + res.status));
    return data;
  }

  function scrollDown() { log.scrollTop = log.scrollHeight; }

  function addUser(text) {
    const div = document.createElement("div");
    div.className = "turn user";
    div.innerHTML = '<div class="bubble"><p></p></div>';
    div.querySelector("p").textContent = text;
    log.appendChild(div);
    scrollDown();
  }

  function addError(text) {
    const p = document.createElement("p");
    p.className = "error";
    p.textContent = text;
    log.appendChild(p);
    scrollDown();
  }

  function addBot(r) {
    const node = document.getElementById("bot-turn").content.firstElementChild.cloneNode(true);
    node.dataset.turnId = r.turn_id;
    node.dataset.kind = r.kind;
    node.classList.add(r.kind);
    if (r.handoff) node.classList.add("handoff");
    node.querySelector(".text").textContent = r.reply;
    node.querySelector(".handoff-banner").hidden = !r.handoff;
    if (r.kind === "clarify" && r.options && r.options.length) {
      const box = node.querySelector(".options");
      box.hidden = false;
      r.options.forEach((o) => {
        const b = document.createElement("button");
        b.type = "button";
        b.textContent = o.replace(/[_-]/g, " ");
        b.addEventListener("click", () => ask(o.replace(/[_-]/g, " ")));
        box.appendChild(b);
      });
    }
    const why = node.querySelector(".why");
    why.textContent = describe(r);
    node.querySelector(".why-toggle").addEventListener("click", () => { why.hidden = !why.hidden; });
    const state = node.querySelector(".fb-state");
    const correct = node.querySelector(".correct");
    const select = node.querySelector(".correct-select");
    info.intents.forEach((i) => select.add(new Option("intent: " + i.replace(/[_-]/g, " "), "intent:" + i)));
    info.faq.forEach((f) => select.add(new Option("FAQ: " + f.question, "faq:" + f.id)));
    select.add(new Option("something the assistant cannot help with", "intent:oos"));
    async function feedback(helpful, correction) {
      const body = { conversation_id: conversationId, turn_id: r.turn_id, helpful };
      if (correction && correction.startsWith("intent:")) body.correct_intent = correction.slice(7);
      if (correction && correction.startsWith("faq:")) body.correct_faq_id = correction.slice(4);
      try {
        await call("POST", "/v1/assist/feedback", body);
        state.textContent = helpful ? "Thanks!" : (correction ? "Thanks, noted." : "Sorry - what did you mean?");
        node.querySelector(".up").classList.toggle("chosen", helpful);
        node.querySelector(".down").classList.toggle("chosen", !helpful);
        node.dataset.feedback = helpful ? "up" : "down";
      } catch (e) { state.textContent = "Feedback not saved: " + e.message; }
    }
    node.querySelector(".up").addEventListener("click", () => { correct.hidden = true; feedback(true); });
    node.querySelector(".down").addEventListener("click", () => { correct.hidden = false; feedback(false); });
    node.querySelector(".correct-send").addEventListener("click", () => {
      if (select.value) feedback(false, select.value);
      correct.hidden = true;
    });
    log.appendChild(node);
    scrollDown();
  }

  function describe(r) {
    const w = r.why || {};
    const lines = ["Decision: " + r.kind + (r.handoff ? " (hand-off)" : ""), "Rule: " + (w.rule || "")];
    if (w.intent) lines.push("Intent: " + w.intent.label + " " + w.intent.score +
      (w.intent.runner_up ? "; runner-up " + w.intent.runner_up + " " + w.intent.runner_up_score : ""));
    if (w.oos) lines.push("Out-of-scope score (" + w.oos.method + "): " + w.oos.score +
      " vs threshold " + w.oos.threshold);
    if (w.faq) lines.push("Nearest FAQ: " + w.faq.id + " similarity " + w.faq.similarity +
      " vs threshold " + w.faq.threshold + ' ("' + w.faq.question + '")');
    if (w.slots_missing) lines.push("Missing: " + w.slots_missing.join(", "));
    return lines.join("\n");
  }

  async function ask(text) {
    addUser(text);
    send.disabled = true;
    try {
      const r = await call("POST", "/v1/assist/reply",
                           { conversation_id: conversationId, message: text, message_id: newId() });
      addBot(r);
    } catch (e) {
      addError("Could not get an answer: " + e.message);
    } finally {
      send.disabled = false;
      input.focus();
    }
  }

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    ask(text);
  });

  document.getElementById("savekey").addEventListener("click", () => {
    sessionStorage.setItem("ronghe-key", document.getElementById("key").value);
    keybar.hidden = true;
    load();
  });

  async function load() {
    try {
      info = await call("GET", "/v1/assist/info");
      document.getElementById("title").textContent = "Assistant: " + info.name;
      status.textContent = "version " + info.version;
      document.body.dataset.ready = "1";
    } catch (e) { status.textContent = e.message; }
  }
  window.ronghe = { conversationId };
  load();
  input.focus();
})();
