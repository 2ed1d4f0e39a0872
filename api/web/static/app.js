// private-rag web app: small, dependency-free. Everything that comes from documents or users is
// written with textContent (never innerHTML), so hostile text stays text.
"use strict";
(function () {
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const csrf = csrfMeta ? csrfMeta.content : "";

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  async function api(path, method, body, accept) {
    const headers = { "X-CSRF-Token": csrf, "Accept": accept || "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, {
      method: method, headers: headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 401) { window.location.assign("/signin"); throw new Error("signed out"); }
    return response;
  }

  async function errorText(response) {
    try { const data = await response.json(); return data.error.message + " (request " + data.request_id + ")"; }
    catch (e) { return "the request failed (" + response.status + ")"; }
  }

  // ---- Ask ------------------------------------------------------------------------------------
  function badge(final) {
    let kind = "local", text = "Local model";
    if (final.backend === "external") { kind = "escalated"; text = "Escalated: " + (final.route.model || "external model"); }
    else if (final.fallback) { kind = "fallback"; text = "Fallback: extracted from passages"; }
    else if (final.backend === "extractive") { text = "Local: extracted from passages"; }
    const b = el("span", "badge badge-" + kind, text);
    b.title = "Route: " + (final.route.reason || "");
    return b;
  }

  function chip(n, onOpen) {
    const button = el("button", "chip", String(n));
    button.type = "button";
    button.setAttribute("aria-label", "Source " + n);
    button.addEventListener("click", onOpen);
    return button;
  }

  function appendWithChips(parent, text, openCitation) {
    const parts = text.split(/\[(\d+)\]/);
    parts.forEach(function (part, i) {
      if (i % 2 === 0) { if (part) parent.appendChild(document.createTextNode(part)); }
      else { const n = Number(part); parent.appendChild(chip(n, function () { openCitation(n); })); }
    });
  }

  function highlight(target, text, quote) {
    target.textContent = "";
    let at = quote ? text.indexOf(quote) : -1;
    let length = quote ? quote.length : 0;
    if (at < 0 && quote) { // the quote may differ in whitespace from the stored passage
      const words = quote.trim().split(/\s+/).map(function (w) { return w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"); });
      const match = new RegExp(words.join("\\s+")).exec(text);
      if (match) { at = match.index; length = match[0].length; }
    }
    if (at < 0) { target.appendChild(document.createTextNode(text)); return; }
    target.appendChild(document.createTextNode(text.slice(0, at)));
    const mark = el("mark", "quote", text.slice(at, at + length));
    mark.id = "passage-quote";
    target.appendChild(mark);
    target.appendChild(document.createTextNode(text.slice(at + length)));
  }

  async function openPassage(citation) {
    const dialog = document.getElementById("passage");
    document.getElementById("passage-title").textContent = citation.title || citation.path;
    document.getElementById("passage-path").textContent = citation.path;
    document.getElementById("passage-page").textContent = citation.page ? String(citation.page) : "—";
    document.getElementById("passage-section").textContent = "…";
    document.getElementById("passage-version").textContent = "sha256 " + citation.document_sha256;
    const body = document.getElementById("passage-text");
    body.textContent = "Loading the passage…";
    if (!dialog.open) dialog.showModal();
    const response = await api("/passages/" + citation.chunk_id, "GET");
    if (!response.ok) {
      body.textContent = "";
      body.appendChild(el("p", "error", await errorText(response)));
      body.appendChild(el("mark", "quote", citation.quote));
      return;
    }
    const passage = await response.json();
    document.getElementById("passage-section").textContent = passage.section || "—";
    document.getElementById("passage-version").textContent =
      "v" + passage.document_version + " · sha256 " + passage.document_sha256;
    highlight(body, passage.text, citation.quote);
    const mark = document.getElementById("passage-quote");
    if (mark) mark.scrollIntoView({ block: "center" });
  }

  function feedbackControls(requestId) {
    const form = el("form", "feedback");
    form.setAttribute("aria-label", "Rate this answer");
    const comment = el("input");
    comment.type = "text";
    comment.maxLength = 2000;
    comment.placeholder = "Optional comment";
    comment.setAttribute("aria-label", "Comment on this answer (optional)");
    const status = el("span", "muted");
    status.setAttribute("role", "status");
    [["up", "Helpful"], ["down", "Not helpful"]].forEach(function (pair) {
      const button = el("button", "rate rate-" + pair[0], pair[1]);
      button.type = "button";
      button.setAttribute("aria-pressed", "false");
      button.addEventListener("click", async function () {
        const response = await api("/v1/feedback", "POST",
          { request_id: requestId, rating: pair[0], comment: comment.value.trim() || null });
        if (!response.ok) { status.textContent = await errorText(response); return; }
        form.querySelectorAll("button.rate").forEach(function (b) { b.setAttribute("aria-pressed", String(b === button)); });
        status.textContent = "Thanks, your rating is recorded.";
      });
      form.appendChild(button);
    });
    form.appendChild(comment);
    form.appendChild(status);
    form.addEventListener("submit", function (e) { e.preventDefault(); });
    return form;
  }

  function renderFinal(turn, final) {
    const byN = {};
    final.citations.forEach(function (c) { byN[c.n] = c; });
    turn.citations = byN;
    const meta = el("div", "answer-meta");
    meta.appendChild(badge(final));
    if (final.notice) meta.appendChild(el("span", "muted", final.notice));
    turn.box.appendChild(meta);
    if (final.status === "not_found") {
      turn.box.classList.add("not-found");
      turn.answer.textContent = "";
      turn.answer.appendChild(el("strong", "", "Not found in the documents you may read. "));
      turn.answer.appendChild(document.createTextNode(final.answer));
    }
    if (final.citations.length) {
      turn.box.appendChild(el("h3", "sources-title", final.status === "not_found" ? "Closest passages" : "Sources"));
      turn.box.appendChild(sourceList(final.citations));
    }
    turn.box.appendChild(feedbackControls(final.request_id));
  }

  function sourceList(citations) {
    const list = el("ol", "sources");
    citations.forEach(function (c) {
      const item = el("li", "source");
      item.appendChild(chip(c.n, function () { openPassage(c); }));
      item.appendChild(el("span", "source-title", c.title || c.path));
      item.appendChild(el("span", "path", c.path + (c.page ? " · p. " + c.page : "")));
      item.appendChild(el("q", "source-quote", c.quote));
      list.appendChild(item);
    });
    return list;
  }

  async function readEvents(response, onEvent) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const chunk = await reader.read();
      if (chunk.done) break;
      buffer += decoder.decode(chunk.value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let event = "message", data = "";
        block.split("\n").forEach(function (line) {
          if (line.startsWith("event: ")) event = line.slice(7);
          else if (line.startsWith("data: ")) data += line.slice(6);
        });
        await onEvent(event, JSON.parse(data));
      }
    }
  }

  function newTurn(thread, question) {
    const empty = document.getElementById("thread-empty");
    if (empty) empty.hidden = true;
    thread.appendChild(el("div", "turn question", question));
    const box = el("article", "turn answer-box");
    box.setAttribute("aria-busy", "true");
    const answer = el("p", "answer");
    box.appendChild(answer);
    thread.appendChild(box);
    const turn = { box: box, answer: answer, citations: {} };
    turn.open = function (n) { if (turn.citations[n]) openPassage(turn.citations[n]); };
    return turn;
  }

  function finishTurn(turn, final) {
    if (!turn.answer.textContent) appendWithChips(turn.answer, final.answer, turn.open);
    renderFinal(turn, final);
    turn.box.dataset.requestId = final.request_id;
    turn.box.setAttribute("aria-busy", "false");
  }

  function conversationEntry(summary) {
    const list = document.getElementById("conversation-list");
    const none = document.getElementById("no-conversations");
    if (none) none.remove();
    let item = list.querySelector('li[data-conversation="' + summary.id + '"]');
    if (!item) {
      item = el("li");
      item.dataset.conversation = String(summary.id);
      const link = el("a", "", summary.title);
      link.href = "/ask/" + summary.id;
      link.setAttribute("aria-current", "page");
      item.appendChild(link);
      item.appendChild(el("span", "muted", ""));
      list.prepend(item);
    }
    item.querySelector("a").textContent = summary.title;
    item.querySelector(".muted").textContent = summary.turns + (summary.turns === 1 ? " question" : " questions");
    return item;
  }

  function showTitle(title) {
    const heading = document.getElementById("conversation-title");
    heading.textContent = title;
    heading.classList.remove("visually-hidden");
    document.getElementById("rename-title").value = title;
    document.getElementById("conversation-tools").hidden = false;
    document.title = title + " · private-rag";
  }

  async function loadConversation(chat, thread) {
    const id = chat.dataset.conversation;
    if (!id) return;
    const response = await api("/v1/conversations/" + id, "GET");
    if (!response.ok) { thread.appendChild(el("p", "error", await errorText(response))); return; }
    const conversation = await response.json();
    conversation.messages.forEach(function (m) { finishTurn(newTurn(thread, m.question), m.result); });
    return conversation;
  }

  function initConversationTools(chat) {
    const status = document.getElementById("conversation-status");
    document.getElementById("rename-form").addEventListener("submit", async function (e) {
      e.preventDefault();
      const title = document.getElementById("rename-title").value.trim();
      const response = await api("/v1/conversations/" + chat.dataset.conversation, "PATCH", { title: title });
      if (!response.ok) { status.textContent = await errorText(response); return; }
      const summary = await response.json();
      showTitle(summary.title);
      conversationEntry(summary);
      status.textContent = "Renamed.";
    });
    document.getElementById("delete-conversation").addEventListener("click", async function () {
      if (!window.confirm("Delete this conversation and its answers?")) return;
      const response = await api("/v1/conversations/" + chat.dataset.conversation, "DELETE");
      if (!response.ok) { status.textContent = await errorText(response); return; }
      window.location.assign("/ask");
    });
  }

  function initAsk() {
    const form = document.getElementById("ask-form");
    const input = document.getElementById("question");
    const thread = document.getElementById("thread");
    const submit = document.getElementById("ask-submit");
    const chat = document.getElementById("chat");
    initConversationTools(chat);
    loadConversation(chat, thread);
    input.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); form.requestSubmit(); }
    });
    form.addEventListener("submit", async function (e) {
      e.preventDefault();
      const question = input.value.trim();
      if (!question) return;
      const turn = newTurn(thread, question);
      const status = el("p", "muted thinking", "Searching the documents…");
      turn.box.prepend(status);
      input.value = "";
      submit.disabled = true;
      try {
        if (!chat.dataset.conversation) { // the first question starts a conversation, kept server-side
          const created = await api("/v1/conversations", "POST", {});
          if (!created.ok) { status.remove(); turn.answer.appendChild(el("span", "error", await errorText(created))); return; }
          chat.dataset.conversation = String((await created.json()).id);
          window.history.replaceState(null, "", "/ask/" + chat.dataset.conversation);
        }
        const response = await api("/v1/conversations/" + chat.dataset.conversation + "/messages", "POST",
          { question: question, stream: true }, "text/event-stream");
        if (!response.ok) { status.remove(); turn.answer.appendChild(el("span", "error", await errorText(response))); return; }
        await readEvents(response, async function (event, data) {
          if (event === "delta") {
            status.remove();
            const sentence = el("span", "sentence");
            appendWithChips(sentence, data.text, turn.open);
            turn.answer.appendChild(sentence);
            await new Promise(function (r) { window.requestAnimationFrame(r); }); // paint each sentence
          } else if (event === "final") {
            status.remove();
            finishTurn(turn, data);
          } else if (event === "error") {
            status.remove();
            turn.answer.appendChild(el("span", "error", data.error ? data.error.message : "the answer failed"));
          }
        });
        const listed = await api("/v1/conversations/" + chat.dataset.conversation, "GET");
        if (listed.ok) {
          const summary = await listed.json();
          conversationEntry(summary);
          showTitle(summary.title);
        }
      } catch (err) {
        turn.answer.appendChild(el("span", "error", "The connection failed: " + err.message));
      } finally {
        turn.box.setAttribute("aria-busy", "false");
        submit.disabled = false;
        input.focus();
      }
    });
  }

  // ---- Search ---------------------------------------------------------------------------------
  function initSearch() {
    const form = document.getElementById("search-form");
    const results = document.getElementById("results");
    const status = document.getElementById("search-status");
    form.addEventListener("submit", async function (e) {
      e.preventDefault();
      const filters = {};
      const collection = form.collection.value.trim();
      if (collection) filters.collection = collection;
      if (form.label.value) filters.label = form.label.value;
      status.textContent = "Searching…";
      results.textContent = "";
      const response = await api("/v1/search", "POST", { query: form.q.value, top_k: 10, filters: filters });
      if (!response.ok) { status.textContent = await errorText(response); return; }
      const data = await response.json();
      status.textContent = data.results.length + " passages";
      data.results.forEach(function (r) {
        const item = el("li", "result");
        const head = el("div", "result-head");
        head.appendChild(el("strong", "", r.title || r.path));
        head.appendChild(el("span", "label label-" + r.label, r.label));
        head.appendChild(el("span", "muted", "score " + r.score.toFixed(3)));
        item.appendChild(head);
        item.appendChild(el("div", "path", r.path + (r.page ? " · p. " + r.page : "") + (r.section ? " · " + r.section : "")));
        item.appendChild(el("p", "passage-text", r.text));
        results.appendChild(item);
      });
    });
  }

  // ---- Admin: documents -----------------------------------------------------------------------
  function initAdminDocuments() {
    const status = document.getElementById("relabel-status");
    document.querySelectorAll("form.relabel").forEach(function (form) {
      form.addEventListener("submit", async function (e) {
        e.preventDefault();
        const id = form.dataset.document;
        const groups = groupList(form.groups.value);
        const response = await api("/v1/documents/" + id, "PATCH", { groups: groups, label: form.label.value });
        if (!response.ok) { status.textContent = "Document " + id + ": " + await errorText(response); return; }
        const doc = await response.json();
        const row = document.getElementById("doc-" + id);
        row.querySelector(".groups").textContent = doc.groups.join(", ");
        const label = row.querySelector(".label");
        label.textContent = doc.label;
        label.className = "label label-" + doc.label;
        status.textContent = "Saved document " + id + ": label " + doc.label + ", groups " + (doc.groups.join(", ") || "none");
      });
    });
  }

  // ---- Admin: ingestion -----------------------------------------------------------------------
  const ACTIVE = { queued: true, running: true };

  function jobItem(job, meta) {
    const item = el("li", "result job");
    item.id = "job-" + job.job_id;
    item.dataset.job = String(job.job_id);
    item.dataset.path = job.path;
    item.dataset.collection = job.collection;
    item.dataset.groups = JSON.stringify(meta.groups === undefined ? null : meta.groups);
    item.dataset.label = meta.label || "";
    const head = el("div", "result-head");
    head.appendChild(el("strong", "", "Job " + job.job_id));
    head.appendChild(el("span", "state"));
    head.appendChild(el("span", "muted", job.collection));
    item.appendChild(head);
    item.appendChild(el("div", "path", job.path));
    const bar = el("progress", "job-progress");
    bar.setAttribute("aria-label", "Progress of job " + job.job_id);
    item.appendChild(bar);
    item.appendChild(el("p", "counts"));
    item.appendChild(el("ul", "failures"));
    return item;
  }

  function showJob(item, job) {
    item.dataset.state = job.state;
    const state = item.querySelector(".state");
    state.textContent = job.state;
    state.className = "state state-" + job.state;
    const bar = item.querySelector(".job-progress");
    bar.max = Math.max(job.files_total, 1);
    bar.value = job.files_seen;
    item.querySelector(".counts").textContent = job.files_seen + " of " + job.files_total + " files: " +
      job.files_indexed + " indexed, " + job.files_unchanged + " unchanged, " + job.files_deleted + " deleted, " +
      job.files_failed + " failed; " + job.chunks_added + " chunks added";
    let error = item.querySelector(".job-error");
    if (job.error && !error) { error = el("p", "error job-error"); item.querySelector(".counts").after(error); }
    if (error) error.textContent = job.error || "";
    const failures = item.querySelector(".failures");
    failures.textContent = "";
    const shown = Number(document.getElementById("jobs").dataset.failedShown || 50);
    job.errors.slice(0, shown).forEach(function (e) {
      const line = el("li");
      line.appendChild(el("span", "path", e.path));
      line.appendChild(document.createTextNode(": "));
      line.appendChild(el("span", "error", e.error));
      failures.appendChild(line);
    });
    if (job.files_failed && !ACTIVE[job.state] && !item.querySelector("button.retry")) {
      const retry = el("button", "retry", "Retry failed files");
      retry.type = "button";
      retry.dataset.job = String(job.job_id);
      item.appendChild(retry);
    }
  }

  // every poll is an audited request: poll each second while a job moves, back off to 15 s while it
  // does not (a queued job with no worker running), and not at all while the tab is hidden
  async function follow(item) {
    let delay = 1000, last = "";
    while (ACTIVE[item.dataset.state]) {
      await new Promise(function (r) { window.setTimeout(r, delay); });
      if (document.hidden) continue;
      const response = await api("/v1/ingest/jobs/" + item.dataset.job, "GET");
      if (!response.ok) { item.querySelector(".counts").textContent = await errorText(response); return; }
      const job = await response.json();
      const now = job.state + ":" + job.files_seen;
      delay = now === last ? Math.min(delay * 1.5, 15000) : 1000;
      last = now;
      showJob(item, job);
    }
  }

  function initAdminIngest() {
    const list = document.getElementById("jobs");
    const status = document.getElementById("ingest-status");

    async function start(body, note) {
      const response = await api("/v1/ingest/jobs", "POST", body);
      if (!response.ok) { status.textContent = await errorText(response); return; }
      const job = await response.json();
      const none = document.getElementById("no-jobs");
      if (none) none.remove();
      const item = jobItem(job, body);
      list.prepend(item);
      showJob(item, job);
      status.textContent = note(job);
      follow(item);
    }

    const form = document.getElementById("ingest-form");
    if (form) {
      form.addEventListener("submit", function (e) {
        e.preventDefault();
        const sub = form.elements.namedItem("sub").value.trim().replace(/^\/+/, "");
        const groups = groupList(form.elements.namedItem("groups").value);
        start({
          path: form.elements.namedItem("root").value + (sub ? "/" + sub : ""),
          collection: form.elements.namedItem("collection").value.trim(),
          groups: groups.length ? groups : null,
          label: form.elements.namedItem("label").value || null,
        }, function (job) { return "Started job " + job.job_id + "."; });
      });
    }
    // a retry runs the job's path again with its options: files ingested since are unchanged (their
    // content hash) and skipped, the failed ones are tried again, and folder policies apply as before
    list.addEventListener("click", function (e) {
      const button = e.target.closest("button.retry");
      if (!button) return;
      const item = button.closest("li.job");
      button.disabled = true;
      start({
        path: item.dataset.path,
        collection: item.dataset.collection,
        groups: JSON.parse(item.dataset.groups || "null"),
        label: item.dataset.label || null,
      }, function (job) { return "Retrying the failed files of job " + item.dataset.job + " as job " + job.job_id + "."; });
    });
    list.querySelectorAll("li.job").forEach(function (item) { follow(item); });
  }

  // ---- Admin: routing and status ---------------------------------------------------------------
  function initAdminRouting() {
    const form = document.getElementById("explain-form");
    const status = document.getElementById("explain-status");
    const result = document.getElementById("explain-result");
    form.addEventListener("submit", async function (e) {
      e.preventDefault();
      const body = { question: form.elements.namedItem("question").value };
      const user = form.elements.namedItem("user").value;
      if (user) body.user = user;
      status.textContent = "Retrieving as " + (user || "you") + "…";
      const response = await api("/v1/route/explain", "POST", body);
      if (!response.ok) { status.textContent = await errorText(response); result.hidden = true; return; }
      const data = await response.json();
      const route = data.route;
      const set = function (id, text) { document.getElementById(id).textContent = text; };
      set("explain-target", route.target + (route.model ? " (" + route.model + ")" : ""));
      set("explain-rule", route.rule || "—");
      set("explain-reason", route.reason || "—");
      set("explain-detectors", (route.detectors || []).join(", ") || "none");
      const counts = function (map) {
        return Object.keys(map || {}).map(function (k) { return k + ": " + map[k]; }).join(", ") || "none";
      };
      set("explain-labels", counts(route.labels) + (route.withheld ? " · withheld " + counts(route.withheld) : ""));
      set("explain-for", data.user.name + " (" + data.user.role + "; groups " + (data.user.groups.join(", ") || "none") + ")" +
        (data.escalation_enabled ? "" : " · escalation is off"));
      const rows = document.querySelector("#explain-passages tbody");
      rows.textContent = "";
      data.passages.forEach(function (p) {
        const row = el("tr");
        row.appendChild(el("td", "", p.rank));
        row.appendChild(el("td", "path", p.path));
        row.appendChild(el("td", "", p.label));
        row.appendChild(el("td", "", p.would_send ? "yes" : "no"));
        rows.appendChild(row);
      });
      status.textContent = data.passages.length + " passages; request " + data.request_id;
      result.hidden = false;
    });
  }

  async function initAdminStatus() {
    const state = document.getElementById("ready-state");
    const checks = document.getElementById("ready-checks");
    const response = await api("/readyz", "GET");
    let data;
    try { data = await response.json(); } catch (e) { state.textContent = await errorText(response); return; }
    if (!data.checks) { state.textContent = data.error ? data.error.message : "unknown"; return; }
    state.textContent = data.status === "ready" ? "Ready" : "Not ready";
    state.className = data.status === "ready" ? "ok" : "error";
    Object.keys(data.checks).forEach(function (name) {
      checks.appendChild(el("dt", "", name));
      checks.appendChild(el("dd", "", data.checks[name]));
    });
  }

  // ---- Audit: chain verification -------------------------------------------------------------
  function initAudit() {
    const button = document.getElementById("verify-chain");
    const out = document.getElementById("verify-result");
    button.addEventListener("click", async function () {
      button.disabled = true;
      out.textContent = "Verifying every record…";
      try {
        const response = await api("/v1/audit/verify", "GET");
        if (!response.ok) { out.textContent = await errorText(response); return; }
        const v = await response.json();
        out.className = v.ok ? "ok" : "error";
        const cp = v.checkpoint;
        const against = cp
          ? "; last checkpoint #" + cp.head_seq + " " + String(cp.head_hash || "").slice(0, 16) + "… of " + cp.created_at
          : "; no checkpoint configured (RAG_AUDIT_CHECKPOINT_FILE), so a truncated log would not show";
        out.textContent = (v.ok
          ? "Chain intact: " + v.records + " records, head #" + v.head_seq + " " + v.head_hash.slice(0, 16) + "…"
          : "Chain broken at record " + (v.first_bad.seq === null ? "?" : v.first_bad.seq) + ": " + v.first_bad.reason)
          + against;
        out.title = v.head_hash;
      } finally { button.disabled = false; }
    });
  }

  // ---- Admin: users and keys ------------------------------------------------------------------
  function groupList(text) {
    return text.split(",").map(function (g) { return g.trim(); }).filter(Boolean);
  }

  function initAdminUsers() {
    const status = document.getElementById("users-status");
    const reload = function () { window.location.reload(); };
    document.getElementById("new-user").addEventListener("submit", async function (e) {
      e.preventDefault();
      const form = e.target;
      const field = function (n) { return form.elements.namedItem(n); };
      const body = { name: field("name").value.trim(), role: field("role").value, groups: groupList(field("groups").value) };
      const response = await api("/v1/users", "POST", body);
      status.textContent = response.ok ? "Created " + body.name + "; issue a key next." : await errorText(response);
      if (response.ok) reload();
    });
    document.querySelectorAll("form.user-edit").forEach(function (form) {
      form.addEventListener("submit", async function (e) {
        e.preventDefault();
        const name = form.dataset.user;
        const body = { groups: groupList(form.groups.value), disabled: form.disabled.checked };
        if (!form.role.disabled) body.role = form.role.value;
        const response = await api("/v1/users/" + encodeURIComponent(name), "PATCH", body);
        if (!response.ok) { status.textContent = name + ": " + await errorText(response); return; }
        const user = await response.json();
        const row = document.getElementById("user-" + name);
        row.querySelector(".groups").textContent = user.groups.join(", ");
        row.querySelector(".user-role").textContent = user.role;
        status.textContent = "Saved " + name + ": role " + user.role + ", groups " + (user.groups.join(", ") || "none") +
          (user.disabled ? ", disabled" : "");
      });
    });
    document.querySelectorAll("button.issue-key").forEach(function (button) {
      button.addEventListener("click", async function () {
        const name = button.dataset.user;
        const response = await api("/v1/users/" + encodeURIComponent(name) + "/keys", "POST", {});
        if (!response.ok) { status.textContent = name + ": " + await errorText(response); return; }
        const key = await response.json();
        const box = document.getElementById("new-key");
        document.getElementById("new-key-user").textContent = name;
        document.getElementById("new-key-value").value = key.key;
        box.hidden = false;
        document.getElementById("new-key-value").focus();
        document.getElementById("new-key-value").select();
        status.textContent = "Issued key " + key.prefix + "… for " + name + ".";
      });
    });
    document.querySelectorAll("button.revoke").forEach(function (button) {
      button.addEventListener("click", async function () {
        const response = await api("/v1/keys/" + button.dataset.key, "DELETE");
        if (!response.ok) { status.textContent = await errorText(response); return; }
        button.replaceWith(el("span", "muted", "revoked"));
        status.textContent = "Revoked key " + button.dataset.key + ".";
      });
    });
  }

  const inits = { "ask": initAsk, "search": initSearch, "admin-documents": initAdminDocuments, "audit": initAudit,
    "admin-users": initAdminUsers, "admin-ingest": initAdminIngest, "admin-routing": initAdminRouting,
    "admin-status": initAdminStatus };
  document.addEventListener("DOMContentLoaded", function () {
    const init = inits[document.body.dataset.page];
    if (init) init();
  });
})();
