// The senpos page: runs this service's /sentiment and /pos-tag on the text in the box and shows the answers.
// Plain JavaScript, no dependencies and no build step; the DOM is built with textContent only, never innerHTML.
"use strict";

const TASKS = {
  sentiment: {
    label: "English text", lang: "en", placeholder: "Type or paste an English review…",
    examples: [
      { text: "An absolutely wonderful, moving film with brilliant acting." },
      { text: "Dreadful. Boring, stupid and far too long." },
      { text: "The first hour is slow and the dialogue is clumsy. But the last act is stunning, and the lead " +
              "gives a performance I will not forget. Worth the wait!" },
    ],
  },
  "pos-tag": {
    label: "Chinese text", lang: "zh", placeholder: "输入中文，例如：我们热爱和平。",
    examples: [
      { text: "江泽民发表1998年新年讲话。" },
      { text: "北京大学的学生在图书馆里认真地学习。" },
      { text: "我们 热爱 和平 。", segmented: true },
    ],
  },
};
const MAX_SENTENCES = 50;  // per-sentence scores for at most this many (the server takes 256 items by default)
const TIMEOUT_MS = 90000;  // stop waiting after this (the server's own timeout is 60 s by default)
const KEY = "senpos-api-key";  // sessionStorage: the key lives as long as this tab

const $ = (id) => document.getElementById(id);
const form = $("form"), textBox = $("text"), segmented = $("segmented"), keyInput = $("key");
let inFlight = null;  // the AbortController of the request being waited for
let tagTable = null;  // a promise of /static/pos-tags.json (senpos/pos_tags.py): PFR tag descriptions, UPOS names

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

class ApiError extends Error {
  constructor(status, message, retryAfter, requestId) {
    super(message);
    Object.assign(this, { status, retryAfter, requestId });
  }
}

async function post(path, texts, signal) {
  const headers = { "content-type": "application/json" };
  const key = sessionStorage.getItem(KEY);
  if (key) headers.authorization = `Bearer ${key}`;
  const answer = await fetch(path, { method: "POST", headers, body: JSON.stringify({ texts }), signal });
  let body = null;
  try {
    body = JSON.parse(await answer.text());
  } catch { /* not JSON: an error page from a proxy in between, say */ }
  if (!answer.ok) {
    throw new ApiError(answer.status, errorMessage(body) ?? (answer.statusText || "no details given"),
                       answer.headers.get("retry-after"), body?.request_id ?? answer.headers.get("x-request-id"));
  }
  if (!Array.isArray(body) || body.length !== texts.length) throw new Error("the answer was not in the expected form");
  return body;
}

// A validation error's `error` is a summary ("1 validation error for Input"); its `detail` says what was wrong.
function errorMessage(body) {
  const details = Array.isArray(body?.detail) ? body.detail.map((d) => String(d.msg).replace(/^Value error, /, "")) : [];
  return details.length ? [...new Set(details)].join("; ") : body?.error;
}

function loadTagTable() {
  tagTable ??= fetch("/static/pos-tags.json").then((r) => r.json()).catch(() => ({ tags: {}, upos: {} }));
  return tagTable;
}

// Sentences end at . ! or ? (and any closing quote or bracket) followed by white space.
function splitSentences(text) {
  return text.trim().split(/(?<=[.!?]["'”’)\]]*)\s+/).filter((s) => s.trim());
}

async function runSentiment(text, signal) {
  const sentences = splitSentences(text);
  const scored = sentences.length > 1 ? sentences.slice(0, MAX_SENTENCES) : [];
  const [whole, ...parts] = await post("/sentiment", [text, ...scored], signal);
  const out = [el("h2", {}, "Sentiment"), verdict(whole)];
  if (scored.length) {
    out.push(el("h3", {}, "Sentence by sentence"),
             el("p", { class: "hint" }, "Each sentence scored on its own: bars to the right pull towards positive, " +
                                        "to the left towards negative."),
             el("ol", { class: "sentences" }, ...scored.map((s, i) => sentenceRow(s, parts[i]))));
    if (sentences.length > scored.length) {
      out.push(el("p", { class: "hint" }, `Only the first ${scored.length} of ${sentences.length} sentences are shown.`));
    }
  }
  show(out, `${whole.label === "positive" ? "Positive" : "Negative"}: P(positive) ${whole.score.toFixed(2)}`);
}

function verdict({ label, score }) {
  const fill = el("span", { class: "fill" });
  fill.style.width = `${score * 100}%`;
  return el("div", { class: `verdict ${label}` },
    el("p", { class: "label" }, label === "positive" ? "Positive" : "Negative"),
    el("p", { class: "score" }, `P(positive) = ${score.toFixed(3)}`),
    el("div", { class: "bar", "aria-hidden": "true" }, fill),
    el("div", { class: "scale", "aria-hidden": "true" }, el("span", {}, "negative"), el("span", {}, "positive")));
}

function sentenceRow(sentence, { label, score }) {
  const fill = el("span", { class: "fill" });
  fill.style.left = `${Math.min(score, 0.5) * 100}%`;
  fill.style.width = `${Math.abs(score - 0.5) * 100}%`;
  return el("li", { class: label },
    el("span", { class: "pull", "aria-hidden": "true" }, fill),
    el("span", { class: "num" }, score.toFixed(2), el("span", { class: "sr" }, ` ${label}:`)),
    el("span", { class: "sentence" }, sentence));
}

async function runPos(item, signal) {
  const [[answer], table] = await Promise.all([post("/pos-tag", [item], signal), loadTagTable()]);
  const chips = el("ol", { class: "chips", lang: "zh", "aria-label": "Words and their tags" },
                   ...answer.words.map((word, i) => chip(word, answer.tags[i], answer.upos[i], table)));
  roveWithArrows(chips);
  const legend = el("ul", { class: "legend" }, ...Object.entries(table.upos).map(([upos, name]) =>
    el("li", { "data-upos": upos }, el("span", { class: "swatch", "aria-hidden": "true" }), `${upos} ${name}`)));
  show([el("h2", {}, "Words and tags"),
        el("p", { class: "hint" }, "Hover over a word, or Tab to the words and move with the arrow keys, " +
                                   "for its tag's description. Colours are Universal POS; the tag is PFR."),
        chips,
        el("h3", {}, "Colours (Universal POS)"), legend],
       `${answer.words.length} words tagged`);
}

function chip(word, tag, upos, table) {
  const info = table.tags[tag];
  const tip = el("span", { class: "tip", lang: "en" }, el("b", {}, tag));
  if (info) tip.append(" · ", el("span", { lang: "zh" }, info.zh), " · ", info.en);
  tip.append(el("br"), `Universal POS: ${upos}`);
  return el("li", { class: "chip", "data-upos": upos, tabindex: "-1" },
    el("span", { class: "word" }, word), el("span", { class: "tag", lang: "en", "aria-hidden": "true" }, tag), tip);
}

// One Tab stop for all the words; the arrow keys, Home and End move between them.
function roveWithArrows(list) {
  const items = [...list.children];
  if (items.length) items[0].tabIndex = 0;
  list.addEventListener("keydown", (event) => {
    const i = items.indexOf(document.activeElement);
    const j = { ArrowRight: i + 1, ArrowDown: i + 1, ArrowLeft: i - 1, ArrowUp: i - 1, Home: 0, End: items.length - 1 }[event.key];
    if (i < 0 || j === undefined || !items[j]) return;
    event.preventDefault();
    items[i].tabIndex = -1;
    items[j].tabIndex = 0;
    items[j].focus();
  });
}

function show(nodes, summary) {
  $("result").replaceChildren(...nodes);
  $("result").hidden = false;
  $("status").textContent = summary;
}

function clearOutput() {
  $("result").hidden = true;
  $("result").replaceChildren();
  $("error").hidden = true;
  $("error").replaceChildren();
  $("status").textContent = "";
}

function showError(error) {
  const box = $("error");
  const parts = [el("p", {}, describe(error))];
  if (error.requestId) parts.push(el("p", { class: "hint" }, `Request id: ${error.requestId}`));
  if (!(error instanceof ApiError) || [429, 502, 503, 504].includes(error.status)) {
    const again = el("button", { type: "button" }, "Try again");
    again.addEventListener("click", run);
    parts.push(again);
  }
  box.replaceChildren(...parts);
  box.hidden = false;
  $("status").textContent = "";
  if (error.status === 401) askForKey();
}

function describe(error) {
  if (error.name === "TimeoutError") return `No answer from the service within ${TIMEOUT_MS / 1000} seconds.`;
  if (!(error instanceof ApiError)) return `Could not reach the service: ${error.message}.`;
  const wait = /^\d+$/.test(error.retryAfter ?? "") ? `in ${error.retryAfter} s` : "in a moment";
  switch (error.status) {
    case 400: return `The service could not use this input: ${error.message}`;
    case 401: return sessionStorage.getItem(KEY)
      ? `The API key was not accepted (${error.message}). Enter the right key in the API key field and press Analyse.`
      : "This service needs an API key: enter it in the API key field and press Analyse.";
    case 413: return `Too much text for one request: ${error.message}`;
    case 429: return `The service has too many requests in hand right now. Try again ${wait}.`;
    case 503: return `The service is busy: ${error.message} Try again ${wait}.`;
    case 504: return `The service took too long: ${error.message}`;
    default: return `The service answered with an error (HTTP ${error.status}): ${error.message}`;
  }
}

function askForKey() {
  $("key-row").hidden = false;
  keyInput.value = "";
  sessionStorage.removeItem(KEY);
  keyInput.focus();
}

function showTask(name) {
  const task = TASKS[name];
  form.elements.task.value = name;
  $("text-label").textContent = task.label;
  textBox.lang = task.lang;
  textBox.placeholder = task.placeholder;
  $("segmented-row").hidden = name !== "pos-tag";
  $("examples").replaceChildren(...task.examples.map((example) => {
    const button = el("button", { type: "button", lang: task.lang }, example.text);
    button.addEventListener("click", () => {
      textBox.value = example.text;
      segmented.checked = Boolean(example.segmented);
      run();
    });
    return el("li", {}, button);
  }));
}

// The address bar always holds a link that reruns what is shown.
function followUrl(name, text, words) {
  const query = new URLSearchParams({ task: name, text });
  if (words) query.set("segmented", "1");
  history.replaceState(null, "", `?${query}`);
}

async function run() {
  const name = form.elements.task.value, text = textBox.value, words = name === "pos-tag" && segmented.checked;
  if (!$("key-row").hidden) {
    if (keyInput.value.trim()) sessionStorage.setItem(KEY, keyInput.value.trim());
    else sessionStorage.removeItem(KEY);
  }
  followUrl(name, text, words);
  inFlight?.abort();
  const request = (inFlight = new AbortController());
  const timer = setTimeout(() => request.abort(new DOMException("timed out", "TimeoutError")), TIMEOUT_MS);
  clearOutput();
  $("status").textContent = "Analysing…";
  try {
    if (name === "sentiment") await runSentiment(text, request.signal);
    else await runPos(words ? text.trim().split(/\s+/) : text, request.signal);
  } catch (error) {
    if (request === inFlight) showError(error);  // else a newer run replaced this one
  } finally {
    clearTimeout(timer);
    if (request === inFlight) inFlight = null;
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  run();
});
textBox.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    run();
  }
});
form.addEventListener("change", (event) => {
  if (event.target.name !== "task") return;
  showTask(event.target.value);
  clearOutput();
});

const query = new URLSearchParams(location.search);
showTask(Object.hasOwn(TASKS, query.get("task") ?? "") ? query.get("task") : "sentiment");
segmented.checked = query.get("segmented") === "1";
if (sessionStorage.getItem(KEY)) {
  $("key-row").hidden = false;
  keyInput.value = sessionStorage.getItem(KEY);
}
if (query.get("text")) {
  textBox.value = query.get("text");
  run();
}
