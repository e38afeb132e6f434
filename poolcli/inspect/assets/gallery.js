// poolcli batch gallery: cards of one run, a page at a time; thumbnails load when their page is shown.
"use strict";
(function () {
  const DATA = JSON.parse(document.getElementById("poolcli-data").textContent);
  const PER_PAGE = 60;
  const state = {page: 0, status: "", find: ""};
  const api = {ready: false, state, perPage: PER_PAGE};
  window.poolGallery = api;
  const shape = (s) => Array.isArray(s) ? s.join("x") : Object.entries(s || {}).map(([k, v]) => `${k}: ${v.join("x")}`).join(", ");
  const size = (n) => n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} kB` : `${n} B`;
  // Every card is built as elements whose text is text (never parsed as markup), and a link only to a
  // local path poolcli made ("./" and percent-encoded segments): nothing in the data can become script.
  const local = (href) => typeof href === "string" && href.startsWith("./") ? href : null;
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (key === "text") node.textContent = value;
      else if (key === "class") node.className = value;
      else node.setAttribute(key, value);
    }
    node.append(...children.filter((c) => c !== null && c !== undefined && c !== ""));
    return node;
  }

  const S = DATA.summary;
  document.getElementById("summary").append(
    el("b", {text: S.total}), " files: ", el("b", {text: S.done}), " done, ", el("b", {text: S.skipped}), " skipped, ",
    el("b", {class: "failed-count", text: S.failed}), " failed",
    ` in ${S.seconds.toFixed(1)} s, ${size(S.output_bytes)} written; ${DATA.settings}${S.interrupted ? "; interrupted" : ""}`);

  function shown() {
    const find = state.find.toLowerCase();
    const list = DATA.entries.filter((e) => (!state.status || e.status === state.status) && (!find || e.input.toLowerCase().includes(find)));
    return list.filter((e) => e.status === "failed").concat(list.filter((e) => e.status !== "failed"));  // failures first
  }
  function picture(href, alt) {
    const src = local(href);
    return src ? el("img", {loading: "lazy", alt, src}) : el("span", {text: "(series)"});
  }
  function link(href, text, cls) {
    const target = local(href);
    return target ? el("a", cls ? {href: target, class: cls, text} : {href: target, text}) : null;
  }
  function card(e) {
    const thumbs = e.status === "done"
      ? el("div", {class: "thumbs"}, picture(e.thumbs[0], "input"), el("span", {class: "arrow", text: "\u2192"}),
        picture(e.thumbs[1], "output"))
      : null;
    const output = e.status !== "failed" ? link(e.output, "output") : null, page = link(e.page, "inspect", "inspect");
    const meta = el("div", {class: "meta"},
      e.status + (e.dtype ? ` ${shape(e.inputShape)} ${e.dtype} \u2192 ${shape(e.outputShape)} ${e.outputDtype}` : "") +
      ` | ${(e.seconds * 1000).toFixed(1)} ms${e.bytes ? " | " + size(e.bytes) : ""} `,
      output, output && page ? " " : "", page);
    return el("article", {class: `card ${e.status}`, "data-status": e.status}, el("div", {class: "name", text: e.input}),
      thumbs, meta, e.error ? el("div", {class: "error", text: e.error}) : null,
      e.note ? el("div", {class: "note", text: e.note}) : null);
  }
  function render() {
    const list = shown(), pages = Math.max(1, Math.ceil(list.length / PER_PAGE));
    state.page = Math.min(state.page, pages - 1);
    const slice = list.slice(state.page * PER_PAGE, (state.page + 1) * PER_PAGE);
    document.getElementById("cards").replaceChildren(...slice.map(card));
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
