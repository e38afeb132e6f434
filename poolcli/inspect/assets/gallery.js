// poolcli batch gallery: cards of one run, a page at a time; thumbnails load when their page is shown.
"use strict";
(function () {
  const DATA = JSON.parse(document.getElementById("poolcli-data").textContent);
  const PER_PAGE = 60;
  const state = {page: 0, status: "", find: ""};
  const api = {ready: false, state, perPage: PER_PAGE};
  window.poolGallery = api;
  const esc = (text) => String(text).replace(/[&<>"]/g, (ch) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[ch]));
  const shape = (s) => Array.isArray(s) ? s.join("x") : Object.entries(s || {}).map(([k, v]) => `${k}: ${v.join("x")}`).join(", ");
  const size = (n) => n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} kB` : `${n} B`;

  const S = DATA.summary;
  document.getElementById("summary").innerHTML =
    `<b>${S.total}</b> files: <b>${S.done}</b> done, <b>${S.skipped}</b> skipped, <b class="failed-count">${S.failed}</b> failed` +
    ` in ${S.seconds.toFixed(1)} s, ${size(S.output_bytes)} written; ${esc(DATA.settings)}${S.interrupted ? "; interrupted" : ""}`;

  function shown() {
    const find = state.find.toLowerCase();
    const list = DATA.entries.filter((e) => (!state.status || e.status === state.status) && (!find || e.input.toLowerCase().includes(find)));
    return list.filter((e) => e.status === "failed").concat(list.filter((e) => e.status !== "failed"));  // failures first
  }
  function card(e) {
    const thumbs = e.status === "done"
      ? `<div class="thumbs">${e.thumbs[0] ? `<img loading="lazy" alt="input" src="${esc(e.thumbs[0])}">` : "<span>(series)</span>"}` +
        `<span class="arrow">&rarr;</span>${e.thumbs[1] ? `<img loading="lazy" alt="output" src="${esc(e.thumbs[1])}">` : "<span>(series)</span>"}</div>`
      : "";
    const links = [e.output && e.status !== "failed" ? `<a href="${esc(e.output)}">output</a>` : "",
      e.page ? `<a class="inspect" href="${esc(e.page)}">inspect</a>` : ""].filter(Boolean).join(" ");
    return `<article class="card ${e.status}" data-status="${e.status}"><div class="name">${esc(e.input)}</div>${thumbs}` +
      `<div class="meta">${e.status}${e.dtype ? ` ${shape(e.inputShape)} ${esc(e.dtype)} &rarr; ${shape(e.outputShape)} ${esc(e.outputDtype)}` : ""}` +
      ` | ${(e.seconds * 1000).toFixed(1)} ms${e.bytes ? " | " + size(e.bytes) : ""} ${links}</div>` +
      (e.error ? `<div class="error">${esc(e.error)}</div>` : "") + (e.note ? `<div class="note">${esc(e.note)}</div>` : "") +
      "</article>";
  }
  function render() {
    const list = shown(), pages = Math.max(1, Math.ceil(list.length / PER_PAGE));
    state.page = Math.min(state.page, pages - 1);
    const slice = list.slice(state.page * PER_PAGE, (state.page + 1) * PER_PAGE);
    document.getElementById("cards").innerHTML = slice.map(card).join("");
    document.getElementById("page").textContent = `page ${state.page + 1} of ${pages} (${list.length} files)`;
    api.pages = pages; api.count = list.length;
  }
  document.getElementById("prev").addEventListener("click", () => { state.page = Math.max(0, state.page - 1); render(); });
  document.getElementById("next").addEventListener("click", () => { state.page += 1; render(); });
  document.getElementById("status").addEventListener("change", (e) => { state.status = e.target.value; state.page = 0; render(); });
  document.getElementById("find").addEventListener("input", (e) => { state.find = e.target.value; state.page = 0; render(); });
  render();
  api.ready = true;
  document.body.dataset.ready = "1";
})();
