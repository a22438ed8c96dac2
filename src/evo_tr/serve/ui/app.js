// EVO-TR web page: plain JavaScript on the server's own API, no libraries, no network beyond this origin.
// Every text from a message or the model reaches the page through textContent / createTextNode, never
// innerHTML: nothing a message holds is ever parsed as HTML or run.
"use strict";

const T = {
  tr: {newChat: "Yeni sohbet", expert: "Uzman", expertHelp: "Otomatik: yönlendirici her mesaj için seçer.", searchSessions: "Oturum ara",
       chat: "Sohbet", memory: "Hafıza", knowledge: "Bilgi", night: "Gece", theme: "Tema", message: "Mesaj",
       placeholder: "Bir şey yazın… (Enter gönderir, Shift+Enter yeni satır)", send: "Gönder", stop: "Durdur", apiKey: "API anahtarı",
       auto: "Otomatik", base: "Temel model", remembered: "Hatırlananlar", sources: "Kaynaklar", interrupted: "yarıda kesildi",
       regenerate: "Yeniden üret", edit: "Düzenle", copy: "Kopyala", copied: "Kopyalandı", good: "İyi cevap", bad: "Kötü cevap",
       fix: "Düzelt", reason: "Neden? (isteğe bağlı)", correction: "Doğru cevap:", deleteSession: "Oturumu sil", confirmDelete: "Bu oturum silinsin mi?",
       thanks: "Teşekkürler, kaydedildi.", error: "Hata", untitled: "(başlıksız)", menu: "Menü",
       memTypes: "Tümü", add: "Ekle", forget: "Unut", confirmForget: "Bu hafıza silinsin mi?", exportAll: "Dışa aktar (JSONL)", importFile: "İçe aktar",
       search: "Ara", upload: "Belge yükle (sürükleyip bırakın)", remove: "Kaldır", pack: "Paket", documents: "Belgeleriniz", nights: "Geceler",
       proposals: "Bekleyen eğitim önerileri", accept: "Kabul", reject: "Reddet", adapters: "Adaptör sürümleri", activate: "Etkinleştir", rollback: "Geri al",
       active: "etkin", imported: "içe aktarıldı", skipped: "atlandı", nothing: "Henüz yok.",
       cancel: "Vazgeç", save: "Kaydet", sendFeedback: "Gönder", model: "Model", schedule: "Gece çalışması",
       scheduleOn: "her gece", scheduleOff: "kurulu değil (`evo schedule install` kurar)", passageGone: "Bu pasaj artık yok (belgesi kaldırılmış olabilir).",
       given: "Verilen geri bildirim", memoryGone: "artık hafızada yok",},
  en: {newChat: "New chat", expert: "Expert", expertHelp: "Auto: the router picks one per message.", searchSessions: "Search sessions",
       chat: "Chat", memory: "Memory", knowledge: "Knowledge", night: "Night", theme: "Theme", message: "Message",
       placeholder: "Type something… (Enter sends, Shift+Enter new line)", send: "Send", stop: "Stop", apiKey: "API key",
       auto: "Auto", base: "Base model", remembered: "Remembered", sources: "Sources", interrupted: "interrupted",
       regenerate: "Regenerate", edit: "Edit", copy: "Copy", copied: "Copied", good: "Good answer", bad: "Bad answer",
       fix: "Correct", reason: "Why? (optional)", correction: "The right answer:", deleteSession: "Delete session", confirmDelete: "Delete this session?",
       thanks: "Thanks, saved.", error: "Error", untitled: "(untitled)", menu: "Menu",
       memTypes: "All", add: "Add", forget: "Forget", confirmForget: "Delete this memory?", exportAll: "Export (JSONL)", importFile: "Import",
       search: "Search", upload: "Upload a document (drag and drop)", remove: "Remove", pack: "Pack", documents: "Your documents", nights: "Nights",
       proposals: "Pending training proposals", accept: "Accept", reject: "Reject", adapters: "Adapter versions", activate: "Activate", rollback: "Roll back",
       active: "active", imported: "imported", skipped: "skipped", nothing: "Nothing yet.",
       cancel: "Cancel", save: "Save", sendFeedback: "Send", model: "Model", schedule: "Night run",
       scheduleOn: "every night at", scheduleOff: "not installed (`evo schedule install` installs it)", passageGone: "This passage is gone (its document may have been removed).",
       given: "Feedback given", memoryGone: "no longer in memory",},
};
let lang = localStorage.getItem("evo-lang") || "tr";
const t = (key) => (T[lang] && T[lang][key]) || T.tr[key] || key;

const $ = (sel) => document.querySelector(sel);
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined && v !== false) node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

// 👍 👎 ✏️ as drawn icons, not emoji: they look the same on every system, with or without an emoji font.
// Paths from Feather icons (MIT, feathericons.com): thumbs-up, thumbs-down, edit-2.
const ICONS = {
  good: "M14 9V5a3 3 0 0 0-3-3l-4 9v11h11.28a2 2 0 0 0 2-1.7l1.38-9a2 2 0 0 0-2-2.3zM7 22H4a2 2 0 0 1-2-2v-7a2 2 0 0 1 2-2h3",
  bad: "M10 15v4a3 3 0 0 0 3 3l4-9V2H5.72a2 2 0 0 0-2 1.7l-1.38 9a2 2 0 0 0 2 2.3zm7-13h2.67A2.31 2.31 0 0 1 22 4v7a2.31 2.31 0 0 1-2.33 2H17",
  fix: "M17 3a2.828 2.828 0 1 1 4 4L7.5 20.5 2 22l1.5-5.5L17 3z",
};
function icon(name) {
  const NS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(NS, "svg");
  for (const [k, v] of Object.entries({viewBox: "0 0 24 24", width: "15", height: "15", fill: "none", stroke: "currentColor",
    "stroke-width": "2", "stroke-linecap": "round", "stroke-linejoin": "round", "aria-hidden": "true", focusable: "false"})) svg.setAttribute(k, v);
  const path = document.createElementNS(NS, "path");
  path.setAttribute("d", ICONS[name]);
  svg.append(path);
  return svg;
}

// -- API ---------------------------------------------------------------------------------------------
// Loopback without a key: the server put a token into this page that opens its write endpoints to it alone.
const PAGE_TOKEN = document.querySelector('meta[name="evo-page-token"]')?.content;
function headers(extra = {}) {
  const key = sessionStorage.getItem("evo-key");
  if (key) return {...extra, Authorization: `Bearer ${key}`};
  return PAGE_TOKEN ? {...extra, "X-Evo-Page-Token": PAGE_TOKEN} : extra;
}
let keyPrompt = null;  // one dialog, however many requests found they need the key
function askKey() {
  if (!keyPrompt) {
    const dialog = $("#key-dialog");
    dialog.showModal();
    keyPrompt = new Promise((resolve) => dialog.addEventListener("close", resolve, {once: true})).then(() => {
      sessionStorage.setItem("evo-key", $("#key-input").value.trim());
      keyPrompt = null;
    });
  }
  return keyPrompt;
}
async function api(path, options = {}) {
  for (let attempt = 0; attempt < 3; attempt++) {
    const r = await fetch(path, {...options, headers: headers(options.headers || {})});
    if (r.status === 401 || (r.status === 403 && (await r.clone().json().catch(() => ({}))).error?.code === "api_key_required")) {
      await askKey();
      continue;
    }
    if (!r.ok) {
      const body = await r.json().catch(() => ({}));
      throw new Error(body.error?.message || `HTTP ${r.status}`);
    }
    return r;
  }
  throw new Error("API key refused");
}
const getJSON = async (path) => (await api(path)).json();
const postJSON = async (path, body) => (await api(path, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)})).json();

// -- safe Markdown (a subset: fences, headings, lists, paragraphs, **bold**, *italic*, `code`, http(s) links) --
const PY_KEYWORDS = new Set("and as assert async await break class continue def del elif else except False finally for from global if import in is lambda None nonlocal not or pass raise return True try while with yield".split(" "));
function highlight(code, language) {
  const frag = document.createDocumentFragment();
  if (!/^(py|python|)$/i.test(language || "")) { frag.append(code); return frag; }
  const token = /(#[^\n]*)|("""[\s\S]*?"""|'''[\s\S]*?'''|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*')|\b(\d+(?:\.\d+)?)\b|\b([A-Za-z_]\w*)\b/g;
  let last = 0, m;
  while ((m = token.exec(code))) {
    frag.append(code.slice(last, m.index));
    const [text] = m;
    const kind = m[1] ? "com" : m[2] ? "str" : m[3] ? "num" : PY_KEYWORDS.has(text) ? "kw" : null;
    frag.append(kind ? el("span", {class: `tok-${kind}`}, text) : text);
    last = m.index + text.length;
  }
  frag.append(code.slice(last));
  return frag;
}
function inline(text) {
  const frag = document.createDocumentFragment();
  const re = /(`[^`\n]+`)|(\*\*[^*\n]+\*\*)|(\*[^*\n]+\*)|(\[[^\]\n]+\]\((https?:\/\/[^\s)]+)\))/g;
  let last = 0, m;
  while ((m = re.exec(text))) {
    frag.append(text.slice(last, m.index));
    if (m[1]) frag.append(el("code", {}, m[1].slice(1, -1)));
    else if (m[2]) frag.append(el("strong", {}, m[2].slice(2, -2)));
    else if (m[3]) frag.append(el("em", {}, m[3].slice(1, -1)));
    else frag.append(el("a", {href: m[5], rel: "noopener noreferrer", target: "_blank"}, m[4].slice(1, m[4].indexOf("]"))));
    last = m.index + m[0].length;
  }
  frag.append(text.slice(last));
  return frag;
}
function renderMarkdown(src) {
  const out = document.createDocumentFragment();
  const lines = src.split("\n");
  let para = [], list = null;
  const flush = () => {
    if (para.length) { out.append(el("p", {}, inline(para.join("\n")))); para = []; }
    list = null;
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const fence = line.match(/^```\s*([\w+-]*)\s*$/);
    if (fence) {
      flush();
      const body = [];
      while (++i < lines.length && !/^```\s*$/.test(lines[i])) body.push(lines[i]);
      out.append(codeBlock(body.join("\n"), fence[1]));
      continue;
    }
    const heading = line.match(/^(#{1,4})\s+(.*)$/);
    const item = line.match(/^\s*(?:[-*•]|\d+[.)])\s+(.*)$/);
    if (heading) { flush(); out.append(el(`h${heading[1].length + 2}`, {}, inline(heading[2]))); }
    else if (item) {
      if (para.length) { out.append(el("p", {}, inline(para.join("\n")))); para = []; }
      if (!list) { list = el(/^\s*\d/.test(line) ? "ol" : "ul"); out.append(list); }
      list.append(el("li", {}, inline(item[1])));
    } else if (!line.trim()) flush();
    else { list = null; para.push(line); }
  }
  flush();
  return out;
}
function codeBlock(code, language) {
  const copy = el("button", {type: "button", class: "copy", "aria-label": t("copy")}, t("copy"));
  copy.addEventListener("click", async () => {
    await navigator.clipboard?.writeText(code).catch(() => {});
    copy.textContent = t("copied");
    setTimeout(() => (copy.textContent = t("copy")), 1500);
  });
  return el("div", {class: "code"}, copy, el("pre", {}, el("code", {class: language ? `lang-${language}` : ""}, highlight(code, language))));
}

// -- state ---------------------------------------------------------------------------------------------
const state = {session: null, history: [], controller: null, busy: false};
const newSessionId = () => `web-${new Date().toISOString().replace(/\D/g, "").slice(0, 14)}-${Math.random().toString(16).slice(2, 6)}`;

function messageNode(role, text) {
  const body = el("div", {class: "body"});
  const node = el("li", {class: `msg ${role}`}, body);
  if (role === "user") body.append(text);
  else body.append(renderMarkdown(text));
  return node;
}
const isPassage = (id) => /^(pack|doc):/.test(id);  // knowledge passage ids; every other id is a memory
function metaNode(evo, finish) {
  const meta = el("div", {class: "meta"});
  const label = evo.intent ? `${evo.expert} · ${evo.intent} · ${Math.round(evo.confidence * 100)}%` : evo.expert;
  meta.append(el("span", {class: "badge", "data-expert": evo.expert}, label));
  if (finish === "interrupted") meta.append(el("span", {class: "interrupted"}, t("interrupted")));
  const memoryIds = (evo.memory_ids || []).filter((id) => !isPassage(id));
  if (memoryIds.length) {
    const details = el("details", {class: "remembered"}, el("summary", {}, `${t("remembered")} (${memoryIds.length})`));
    const list = el("ul");
    details.append(list);
    details.addEventListener("toggle", async () => {
      if (!details.open || list.childElementCount) return;
      for (const id of memoryIds) {
        const found = await getJSON(`/v1/evo/memories/${encodeURIComponent(id)}`).catch(() => null);
        list.append(el("li", {class: found ? "" : "hint"}, found ? found.text : `${id}: ${t("memoryGone")}`));
      }
    });
    meta.append(details);
  }
  const sources = evo.sources?.length ? evo.sources : (evo.memory_ids || []).filter(isPassage).map((id) => ({id, label: null}));
  if (sources.length) meta.append(sourcesNode(sources));
  return meta;
}
function sourcesNode(sources) {
  const passage = el("blockquote", {class: "passage", hidden: true, "aria-live": "polite"});
  const row = el("div", {class: "sources"}, `${t("sources")}: `);
  let openId = null;
  for (const s of sources) {
    const button = el("button", {type: "button", class: "source", "aria-expanded": "false"}, s.label || s.id);
    if (!s.label) getJSON(`/v1/evo/knowledge/passages/${encodeURIComponent(s.id)}`).then((p) => (button.textContent = p.label)).catch(() => {});
    button.addEventListener("click", async () => {
      for (const b of row.querySelectorAll(".source")) b.setAttribute("aria-expanded", "false");
      if (openId === s.id) { openId = null; passage.hidden = true; return; }
      openId = s.id;
      const p = await getJSON(`/v1/evo/knowledge/passages/${encodeURIComponent(s.id)}`).catch(() => null);
      passage.replaceChildren(...(p ? [el("div", {class: "hint"}, p.label), el("p", {}, p.text)] : [el("p", {class: "hint"}, t("passageGone"))]));
      passage.hidden = false;
      button.setAttribute("aria-expanded", "true");
    });
    row.append(button);
  }
  return el("div", {class: "sources-box"}, row, passage);
}
function feedbackNode(evo, given = null) {
  const box = el("div", {class: "feedback"});
  if (!evo.session_id || !evo.turn) return box;
  const status = el("span", {class: "hint", role: "status"}, given ? `${t("given")}: ${given}` : "");
  const send = async (kind, extra = {}) => {
    try {
      await postJSON("/v1/evo/feedback", {session_id: evo.session_id, turn: evo.turn, kind, ...extra});
      box.querySelector("form")?.remove();
      status.textContent = t("thanks");
    } catch (e) { status.textContent = `${t("error")}: ${e.message}`; }
  };
  // 👎 asks for an optional reason, ✏️ for the right answer: a small form under the answer, not a browser prompt.
  const ask = (kind) => {
    box.querySelector("form")?.remove();
    const field = kind === "fix"
      ? el("textarea", {rows: "3", "aria-label": t("correction"), placeholder: t("correction")})
      : el("input", {type: "text", "aria-label": t("reason"), placeholder: t("reason")});
    const form = el("form", {class: "feedback-form"}, field,
      el("button", {type: "submit"}, t(kind === "fix" ? "save" : "sendFeedback")),
      el("button", {type: "button", onclick: () => form.remove()}, t("cancel")));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const value = field.value.trim();
      if (kind === "fix" && !value) { field.focus(); return; }
      send(kind, kind === "fix" ? {text: value} : value ? {reason: value} : {});
    });
    form.addEventListener("keydown", (e) => { if (e.key === "Escape") form.remove(); });
    box.append(form);
    field.focus();
  };
  box.append(
    el("button", {type: "button", "aria-label": t("good"), title: t("good"), onclick: () => send("good")}, icon("good")),
    el("button", {type: "button", "aria-label": t("bad"), title: t("bad"), onclick: () => ask("bad")}, icon("bad")),
    el("button", {type: "button", "aria-label": t("fix"), title: t("fix"), onclick: () => ask("fix")}, icon("fix")),
    status,
  );
  return box;
}

// -- chat --------------------------------------------------------------------------------------------
async function send(text, {replaceLast = false} = {}) {
  if (state.busy || !text.trim()) return;
  if (!state.session) state.session = newSessionId();
  const list = $("#messages");
  if (replaceLast) {
    list.lastElementChild?.remove();
    state.history.pop();
  } else {
    state.history.push({role: "user", content: text});
    list.append(messageNode("user", text));
  }
  const answer = el("li", {class: "msg assistant streaming"}, el("div", {class: "body"}));
  list.append(answer);
  answer.scrollIntoView({block: "end"});
  setBusy(true);
  state.controller = new AbortController();
  let content = "", evo = null, finish = null;
  try {
    const r = await api("/v1/chat/completions", {
      method: "POST", signal: state.controller.signal,
      headers: {"Content-Type": "application/json", "X-Session-Id": state.session},
      body: JSON.stringify({model: $("#expert").value, messages: state.history, stream: true}),
    });
    const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      buffer += value;
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const line = buffer.slice(0, cut).trim();
        buffer = buffer.slice(cut + 2);
        if (!line.startsWith("data: ") || line === "data: [DONE]") continue;
        const chunk = JSON.parse(line.slice(6));
        if (chunk.error) throw new Error(chunk.error.message);
        const choice = chunk.choices?.[0];
        if (choice?.delta?.content) {
          content += choice.delta.content;
          answer.firstChild.replaceChildren(renderMarkdown(content));
        }
        if (choice?.finish_reason) { finish = choice.finish_reason; evo = chunk.evo; }
      }
    }
  } catch (e) {
    if (e.name === "AbortError") finish = "interrupted";
    else answer.append(el("div", {class: "error"}, `${t("error")}: ${e.message}`));
  } finally {
    setBusy(false);
    state.controller = null;
    answer.classList.remove("streaming");
  }
  state.history.push({role: "assistant", content});
  state.lastEvo = evo;  // what the server did with the message (the bench reads its timings)
  if (finish === "interrupted") answer.classList.add("interrupted");
  if (evo) answer.append(metaNode(evo, finish), feedbackNode(evo));
  else if (finish === "interrupted") answer.append(el("div", {class: "meta"}, el("span", {class: "interrupted"}, t("interrupted"))));
  answer.append(actionsNode());
  loadSessions();
}
function actionsNode() {
  const box = el("div", {class: "actions"});
  box.append(
    el("button", {type: "button", onclick: () => regenerate()}, t("regenerate")),
    el("button", {type: "button", onclick: () => editLast()}, t("edit")),
  );
  return box;
}
async function regenerate() {
  const lastUser = [...state.history].reverse().find((m) => m.role === "user");
  if (!lastUser || state.busy) return;
  // The answer being replaced is marked as `/regen` marks it (a signal for the night); nothing to mark before a first stored turn.
  if (state.session) await postJSON("/v1/evo/feedback", {session_id: state.session, kind: "regenerate"}).catch(() => {});
  send(lastUser.content, {replaceLast: true});
}
function editLast() {
  if (state.busy) return;
  const list = $("#messages");
  const i = state.history.map((m) => m.role).lastIndexOf("user");
  if (i < 0) return;
  $("#input").value = state.history[i].content;
  state.history = state.history.slice(0, i);
  while (list.childElementCount > i) list.lastElementChild.remove();
  $("#input").focus();
}
function setBusy(busy) {
  state.busy = busy;
  $("#send").hidden = busy;
  $("#stop").hidden = !busy;
}

// -- sessions ------------------------------------------------------------------------------------------
let sessionsTicket = 0;
async function loadSessions() {
  const box = $("#sessions");
  const ticket = ++sessionsTicket;  // typing in the search box sends one request per key: only the newest answer is shown
  const query = $("#session-search").value.trim().toLocaleLowerCase("tr");
  const data = await getJSON("/v1/evo/sessions?limit=100").catch(() => ({sessions: []}));
  if (ticket !== sessionsTicket) return;
  box.replaceChildren(...data.sessions
    .filter((s) => !query || (s.title || "").toLocaleLowerCase("tr").includes(query))
    .map((s) => el("li", {class: s.id === state.session ? "current" : ""},
      el("button", {type: "button", class: "open", onclick: () => openSession(s.id)}, s.title || t("untitled")),
      el("button", {type: "button", class: "delete", "aria-label": t("deleteSession"), title: t("deleteSession"), onclick: () => deleteSession(s.id)}, "×"))));
}
async function openSession(id) {
  const data = await getJSON(`/v1/evo/sessions/${encodeURIComponent(id)}`);
  state.session = id;
  state.history = [];
  const list = $("#messages");
  list.replaceChildren();
  const given = new Map(data.feedback.map((f) => [f.turn, f.kind]));  // the latest per turn
  for (const turn of data.turns) {
    state.history.push({role: "user", content: turn.message}, {role: "assistant", content: turn.answer});
    list.append(messageNode("user", turn.message));
    const answer = messageNode("assistant", turn.answer);
    const evo = {...turn, confidence: turn.confidence || 0, sources: [], session_id: id, turn: turn.number};
    if (turn.interrupted) answer.classList.add("interrupted");
    answer.append(metaNode(evo, turn.interrupted ? "interrupted" : turn.finish_reason), feedbackNode(evo, given.get(turn.number)));
    list.append(answer);
  }
  if (data.turns.length) list.lastElementChild.append(actionsNode());
  showPage("chat");
  loadSessions();
}
async function deleteSession(id) {
  if (!confirm(t("confirmDelete"))) return;
  await api(`/v1/evo/sessions/${encodeURIComponent(id)}`, {method: "DELETE"});
  if (id === state.session) newChat();
  loadSessions();
}
function newChat() {
  state.session = null;
  state.history = [];
  $("#messages").replaceChildren();
  $("#input").focus();
}


// -- memory page ---------------------------------------------------------------------------------------
async function memoryPage() {
  const page = $("#page-memory");
  const type = el("select", {id: "mem-type", "aria-label": t("memTypes")}, ...["", "fact", "preference", "conversation", "knowledge"].map((v) => el("option", {value: v}, v || t("memTypes"))));
  const query = el("input", {type: "search", "aria-label": t("search"), placeholder: t("search")});
  const addText = el("input", {type: "text", "aria-label": t("add"), placeholder: t("add")});
  const list = el("ul", {class: "items", "aria-live": "polite"});
  const status = el("p", {class: "hint"});
  const file = el("input", {type: "file", accept: ".jsonl,application/x-ndjson", "aria-label": t("importFile")});
  let latest = 0;  // a slower earlier answer (another filter, another query) never overwrites a newer one
  async function refresh() {
    const ticket = ++latest;
    let items;
    if (query.value.trim()) items = (await postJSON("/v1/evo/memories/search", {query: query.value, top_k: 50, type: type.value || null})).hits;
    else items = (await getJSON(`/v1/evo/memories?limit=500${type.value ? `&type=${type.value}` : ""}`)).memories;
    if (ticket !== latest) return;
    list.replaceChildren(...(items.length ? items : [null]).map((m) => m === null ? el("li", {class: "hint"}, t("nothing")) :
      el("li", {class: m.current === false ? "history" : ""}, el("span", {class: "tag"}, m.type), " ", m.text, " ",
        el("button", {type: "button", "aria-label": `${t("forget")}: ${m.text}`, onclick: async () => {
          if (!confirm(t("confirmForget"))) return;
          await api(`/v1/evo/memories/${encodeURIComponent(m.id)}`, {method: "DELETE"});
          refresh();
        }}, t("forget")))));
  }
  page.replaceChildren(
    el("h2", {}, t("memory")),
    el("div", {class: "row"}, type, query, el("button", {type: "button", onclick: refresh}, t("search"))),
    el("form", {class: "row", onsubmit: async (e) => { e.preventDefault(); if (!addText.value.trim()) return; await postJSON("/v1/evo/memories", {text: addText.value}); addText.value = ""; refresh(); }},
      addText, el("button", {type: "submit"}, t("add"))),
    el("div", {class: "row"},
      el("button", {type: "button", onclick: async () => {
        const blob = await (await api("/v1/evo/memories/export")).blob();
        const a = el("a", {href: URL.createObjectURL(blob), download: "evo-memories.jsonl"});
        a.click();
      }}, t("exportAll")),
      el("label", {}, `${t("importFile")} `, file)),
    status, list);
  file.addEventListener("change", async () => {
    if (!file.files.length) return;
    const r = await (await api("/v1/evo/memories/import", {method: "POST", headers: {"Content-Type": "application/x-ndjson"}, body: file.files[0]})).json();
    status.textContent = `${r.imported} ${t("imported")}, ${r.skipped.length} ${t("skipped")}`;
    refresh();
  });
  type.addEventListener("change", refresh);
  await refresh();
}

// -- knowledge page ------------------------------------------------------------------------------------
async function knowledgePage() {
  const page = $("#page-knowledge");
  const drop = el("div", {class: "drop", tabindex: "0", role: "button", "aria-label": t("upload")}, t("upload"));
  const picker = el("input", {type: "file", multiple: true, hidden: true, accept: ".md,.txt,.html,.htm,.pdf"});
  const progress = el("progress", {max: "100", value: "0", hidden: true});
  const docs = el("ul", {class: "items"});
  const query = el("input", {type: "search", "aria-label": t("search"), placeholder: t("search")});
  const found = el("ul", {class: "items"});
  const info = el("p", {class: "hint"});
  async function refresh() {
    const data = await getJSON("/v1/evo/knowledge/documents");
    info.textContent = `${t("pack")}: ${data.pack_version || "—"} (${data.pack_entries})`;
    docs.replaceChildren(...(data.documents.length ? data.documents : [null]).map((d) => d === null ? el("li", {class: "hint"}, t("nothing")) :
      el("li", {}, `${d.path.split("/").pop()} · ${d.chunks} · ${d.kind} `,
        el("button", {type: "button", onclick: async () => { await api(`/v1/evo/knowledge/documents?path=${encodeURIComponent(d.path)}`, {method: "DELETE"}); refresh(); }}, t("remove")))));
  }
  function upload(files) {
    for (const f of files) {
      const form = new FormData();
      form.append("file", f);
      const xhr = new XMLHttpRequest();
      xhr.open("POST", "/v1/evo/knowledge/documents");
      for (const [k, v] of Object.entries(headers())) xhr.setRequestHeader(k, v);
      progress.hidden = false;
      xhr.upload.onprogress = (e) => { if (e.lengthComputable) progress.value = String(Math.round((100 * e.loaded) / e.total)); };
      xhr.onload = () => { progress.hidden = true; if (xhr.status >= 400) info.textContent = JSON.parse(xhr.responseText).error?.message || xhr.status; refresh(); };
      xhr.send(form);
    }
  }
  drop.addEventListener("click", () => picker.click());
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") picker.click(); });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); upload(e.dataTransfer.files); });
  picker.addEventListener("change", () => upload(picker.files));
  page.replaceChildren(el("h2", {}, t("knowledge")), info, drop, picker, progress, el("h3", {}, t("documents")), docs,
    el("form", {class: "row", onsubmit: async (e) => {
      e.preventDefault();
      if (!query.value.trim()) return;
      const r = await postJSON("/v1/evo/knowledge/search", {query: query.value, top_k: 5});
      found.replaceChildren(...r.hits.map((p) => el("li", {}, el("details", {}, el("summary", {}, p.label), el("p", {}, p.text)))));
    }}, query, el("button", {type: "submit"}, t("search"))), found);
  await refresh();
}

// -- night page ------------------------------------------------------------------------------------------
async function imageFrom(path, alt) {
  const img = el("img", {alt});
  const blob = await (await api(path)).blob();  // fetched with the key, shown from memory
  img.src = URL.createObjectURL(blob);
  return img;
}
async function nightPage() {
  const page = $("#page-night");
  const nights = el("ul", {class: "items"});
  const report = el("div", {class: "report"});
  const proposals = el("ul", {class: "items"});
  const adapters = el("ul", {class: "items"});
  const [data, schedule] = await Promise.all([getJSON("/v1/evo/nights"), getJSON("/v1/evo/schedule").catch(() => null)]);
  const scheduleLine = el("p", {class: "hint", id: "schedule"}, schedule === null ? "" : `${t("schedule")}: ` +
    (schedule.installed ? `${t("scheduleOn")} ${schedule.at || ""} (${schedule.kind})` : t("scheduleOff")));
  nights.replaceChildren(...(data.nights.length ? data.nights : [null]).map((n) => n === null ? el("li", {class: "hint"}, t("nothing")) :
    el("li", {}, el("button", {type: "button", onclick: async () => {
      const r = await getJSON(`/v1/evo/nights/${n.day}`);
      const body = renderMarkdown((r.markdown || "").replace(/!\[[^\]]*\]\([^)]*\)/g, ""));
      const charts = await Promise.all(r.charts.map((c) => imageFrom(`/v1/evo/nights/${n.day}/charts/${encodeURIComponent(c)}`, c)));
      report.replaceChildren(body, el("div", {class: "charts"}, ...charts));
    }}, n.day))));
  async function loadProposals() {
    const p = await getJSON("/v1/evo/proposals?status=pending");
    proposals.replaceChildren(...(p.proposals.length ? p.proposals : [null]).map((x) => x === null ? el("li", {class: "hint"}, t("nothing")) :
      el("li", {}, `#${x.id} ${x.expert} · ${x.kind}: `, x.messages.map((m) => `${m.role}: ${m.content}`).join(" / ").slice(0, 300), " ",
        el("button", {type: "button", onclick: async () => { await postJSON("/v1/evo/proposals/accept", {ids: [x.id]}); loadProposals(); }}, t("accept")),
        el("button", {type: "button", onclick: async () => { await postJSON("/v1/evo/proposals/reject", {ids: [x.id]}); loadProposals(); }}, t("reject")))));
  }
  async function loadAdapters() {
    const a = await getJSON("/v1/evo/adapters");
    adapters.replaceChildren(...(a.adapters.length ? a.adapters : [null]).map((x) => x === null ? el("li", {class: "hint"}, t("nothing")) :
      el("li", {}, `${x.expert} ${x.version}${x.active ? ` (${t("active")})` : ""} `,
        el("button", {type: "button", disabled: x.active, onclick: async () => { await postJSON(`/v1/evo/adapters/${x.expert}/activate`, {version: x.version}); loadAdapters(); fillExperts(); modelInfo(); }}, t("activate")),
        el("button", {type: "button", onclick: async () => { await postJSON(`/v1/evo/adapters/${x.expert}/rollback`, {}); loadAdapters(); modelInfo(); }}, t("rollback")))));
  }
  page.replaceChildren(el("h2", {}, t("nights")), scheduleLine, nights, report, el("h3", {}, t("proposals")), proposals, el("h3", {}, t("adapters")), adapters);
  await Promise.all([loadProposals().catch(() => {}), loadAdapters().catch(() => {})]);
}
const PAGES = {memory: memoryPage, knowledge: knowledgePage, night: nightPage};

// -- pages, language, theme ------------------------------------------------------------------------------
function showPage(name) {
  for (const page of document.querySelectorAll(".page")) page.hidden = page.id !== `page-${name}`;
  PAGES[name]?.().catch((e) => $(`#page-${name}`).append(el("p", {class: "error"}, `${t("error")}: ${e.message}`)));
  for (const b of document.querySelectorAll("[data-page]")) b.setAttribute("aria-current", b.dataset.page === name ? "page" : "false");
}
function applyLanguage() {
  document.documentElement.lang = lang;
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  for (const node of document.querySelectorAll("[data-i18n-placeholder]")) node.placeholder = t(node.dataset.i18nPlaceholder);
  for (const node of document.querySelectorAll("[data-i18n-label]")) node.setAttribute("aria-label", t(node.dataset.i18nLabel));
  $("#lang").textContent = lang === "tr" ? "EN" : "TR";
  fillExperts();
}
async function fillExperts() {
  const select = $("#expert");
  const chosen = select.value || "evo-tr";
  const data = await getJSON("/v1/models").catch(() => ({data: [{id: "evo-tr"}, {id: "evo-tr/base"}]}));
  const ids = data.data.map((m) => m.id).filter((id) => id !== "evo-tr-e5");
  select.replaceChildren(...ids.map((id) => el("option", {value: id}, id === "evo-tr" ? t("auto") : id === "evo-tr/base" ? t("base") : id.slice(7))));
  select.value = ids.includes(chosen) ? chosen : "evo-tr";
}

async function modelInfo() {
  const [health, adapters] = await Promise.all([getJSON("/health").catch(() => null), getJSON("/v1/evo/adapters").catch(() => ({adapters: []}))]);
  const served = adapters.adapters.filter((a) => a.served).map((a) => `${a.expert} ${a.version}`);
  $("#model-info").replaceChildren(...[health && `${t("model")}: ${health.model}`, ...served].filter(Boolean).map((line) => el("span", {}, line)));
}

function init() {
  document.documentElement.dataset.theme = localStorage.getItem("evo-theme") || (matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light");
  $("#composer").addEventListener("submit", (e) => { e.preventDefault(); const text = $("#input").value; $("#input").value = ""; send(text); });
  $("#input").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); $("#composer").requestSubmit(); }
  });
  $("#stop").addEventListener("click", () => state.controller?.abort());
  $("#new-chat").addEventListener("click", newChat);
  $("#menu").addEventListener("click", () => {
    const open = $("#sidebar").classList.toggle("open");
    $("#menu").setAttribute("aria-expanded", String(open));
  });
  $("#sidebar").addEventListener("click", (e) => {  // on a phone, choosing a session or a page closes the menu
    if (e.target.closest("#sessions .open, [data-page]")) { $("#sidebar").classList.remove("open"); $("#menu").setAttribute("aria-expanded", "false"); }
  });
  $("#session-search").addEventListener("input", loadSessions);
  $("#lang").addEventListener("click", () => { lang = lang === "tr" ? "en" : "tr"; localStorage.setItem("evo-lang", lang); applyLanguage(); });
  $("#theme").addEventListener("click", () => {
    const next = document.documentElement.dataset.theme === "dark" ? "light" : "dark";
    document.documentElement.dataset.theme = next;
    localStorage.setItem("evo-theme", next);
  });
  for (const b of document.querySelectorAll("[data-page]")) b.addEventListener("click", () => showPage(b.dataset.page));
  applyLanguage();
  loadSessions();
  modelInfo();
  showPage("chat");
}
init();
