// The public verification page: send the file to /api/v1/public/verify with upload progress,
// then show the verdict card and the details. Everything from the file or the answer is set
// with textContent (never as HTML); the pictures are drawn from the visitor's own file.
"use strict";

(() => {
  const form = document.querySelector("[data-public-check]");
  if (!form) return;
  const input = form.querySelector("[data-file]");
  const zone = form.querySelector("[data-dropzone]");
  const chosen = form.querySelector("[data-chosen]");
  const progressCard = document.querySelector("[data-progress]");
  const progressLabel = document.querySelector("[data-progress-label]");
  const progressBar = document.querySelector("[data-progress-bar]");
  const resultBox = document.querySelector("[data-result]");
  const texts = document.querySelector("[data-texts]");
  let file = null;
  // The characters of the page's own cut of NanumGothic: a name holding one outside it (the
  // visitor's file name, another issuer's signer) is set in the app's full face, fetched then.
  const cut = new Set(form.dataset.fontCut || "");
  const fitFace = (node) => {
    node.classList.toggle("outside-cut", [...node.textContent].some((ch) => !cut.has(ch) && !/\s/.test(ch)));
    return node;
  };

  const word = (name) => {
    const node = texts.querySelector(`[data-word="${name}"]`);
    return node ? node.textContent : name;
  };
  const el = (tag, props = {}, children = []) => {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
      if (key === "text") node.textContent = value;
      else if (key === "class") node.className = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) if (child) node.append(child);
    return node;
  };
  // A Korean particle written for either ending ("이(가)") after a value that ends in a Hangul
  // syllable becomes the one that fits it: 이/을/은/과 after a final consonant, 가/를/는/와 after a
  // vowel. After Latin letters or digits the written form stays (the reading decides).
  const PARTICLES = { "이(가)": ["이", "가"], "을(를)": ["을", "를"], "은(는)": ["은", "는"], "과(와)": ["과", "와"] };
  const fitParticle = (value, text) => {
    const pair = Object.keys(PARTICLES).find((written) => text.startsWith(written));
    const last = value.codePointAt(value.length - 1);
    if (!pair || !(last >= 0xac00 && last <= 0xd7a3)) return text;
    const [afterConsonant, afterVowel] = PARTICLES[pair];
    return ((last - 0xac00) % 28 ? afterConsonant : afterVowel) + text.slice(pair.length);
  };
  // Fill the {name} slots of a cloned text with values, as text. A value may be
  // ``{ text, title }``: the words a fan reads, and the exact value on hover.
  const fill = (root, values) => {
    root.querySelectorAll("[data-slot]").forEach((slot) => {
      const given = values[slot.dataset.slot];
      const value = given && typeof given === "object" ? given.text : given;
      slot.textContent = value === undefined || value === null || value === "" ? word("unknown") : String(value);
      if (given && typeof given === "object" && given.title) slot.title = given.title;
      slot.classList.add("value");
      fitFace(slot);
      const next = slot.nextSibling;
      if (next && next.nodeType === Node.TEXT_NODE) next.textContent = fitParticle(slot.textContent, next.textContent);
    });
    return root;
  };

  // A file's size as a fan reads it: bytes under 1 KiB (an empty file is "0 B", not "1 KiB").
  const sizeText = (bytes) => {
    if (bytes < 1024) return `${bytes} B`;
    return bytes < 1048576 ? `${Math.round(bytes / 1024)} KiB` : `${(bytes / 1048576).toFixed(1)} MiB`;
  };
  const choose = (picked) => {
    file = picked;
    const size = picked && sizeText(picked.size);
    chosen.textContent = picked ? `${picked.name} · ${size}` : "";
    fitFace(chosen);
  };
  input.addEventListener("change", () => choose(input.files[0] || null));
  ["dragenter", "dragover"].forEach((type) =>
    zone.addEventListener(type, (event) => { event.preventDefault(); zone.classList.add("over"); }));
  ["dragleave", "drop"].forEach((type) =>
    zone.addEventListener(type, () => zone.classList.remove("over")));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    const dropped = event.dataTransfer && event.dataTransfer.files[0];
    if (dropped) {
      choose(dropped);
      check();
    }
  });
  form.addEventListener("submit", (event) => { event.preventDefault(); check(); });

  let timer = null;
  const showProgress = (label, value) => {
    progressCard.hidden = false;
    progressLabel.textContent = label;
    if (value === null) progressBar.removeAttribute("value"); else progressBar.value = value;
  };
  const analysing = () => {
    const started = Date.now();
    const line = fill(texts.querySelector('[data-word="analysing"]').cloneNode(true), {
      seconds: 0, limit: word("limit"),
    });
    const tick = () => {
      line.querySelector('[data-slot="seconds"]').textContent = String(Math.round((Date.now() - started) / 1000));
      progressLabel.textContent = line.textContent;
    };
    progressCard.hidden = false;
    progressBar.removeAttribute("value");
    tick();
    timer = setInterval(tick, 1000);
  };

  function check() {
    if (!file) { showProblem({ type: "no-file" }); input.focus(); return; }
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    resultBox.hidden = true;
    resultBox.replaceChildren();
    showProgress(word("uploading"), 0);
    const body = new FormData();
    body.append("file", file, file.name);
    const request = new XMLHttpRequest();
    request.open("POST", form.action);
    request.responseType = "json";
    request.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) progressBar.value = event.loaded / event.total;
    });
    request.upload.addEventListener("load", () => { performance.mark("likeness:uploaded"); analysing(); });
    const done = () => { clearInterval(timer); progressCard.hidden = true; button.disabled = false; };
    request.addEventListener("load", () => {
      done();
      const answer = request.response || {};
      if (request.status === 200 && answer.schema) showResult(answer, file);
      else showProblem(answer);
      // benchmarks/public_verify.py: from the end of the upload to the verdict on the page
      performance.mark("likeness:verdict");
    });
    request.addEventListener("error", () => { done(); showProblem({ type: "network" }); });
    request.send(body);
  }

  // A problem's sentence in the page's language: by its type, made more exact by its member
  // ``cause`` where the page has a sentence for it (a HEIC photo: how to share it as JPEG; a
  // busy checker: try again in a minute, not "a shorter clip").
  function problemText(problem) {
    const code = String((problem && problem.type) || "").split(":").pop();
    const exact = problem && problem.cause ? `[data-problem="${code}-${CSS.escape(String(problem.cause))}"]` : null;
    const node = (exact && texts.querySelector(exact))
      || texts.querySelector(`[data-problem="${code}"]`) || texts.querySelector('[data-problem="other"]');
    return node.textContent;
  }

  function showProblem(problem) {
    resultBox.replaceChildren(el("p", { class: "alert bad", role: "alert", text: problemText(problem) }));
    resultBox.hidden = false;
  }

  const useWord = (use) => (use && texts.querySelector(`[data-word="use-${use}"]`) ? word(`use-${use}`) : use);
  const stateWord = (state) =>
    ["active", "revoked", "expired"].includes(state) ? word(`state-${state}`) : word("state-other");
  // A value of the verifier's vocabulary in the page's words, where the page has them (the raw
  // value goes in the row's title); one it does not know is shown as it is.
  const inWords = (prefix, value) =>
    (value && texts.querySelector(`[data-word="${prefix}-${CSS.escape(value)}"]`) ? word(`${prefix}-${value}`) : value);
  // The first 8 of a grant id's 32 hex digits: enough to tell grants apart when reading, with the
  // whole id in the title and in the details.
  const shortGrant = (grantId) => (grantId ? { text: `${grantId.slice(0, 8)}…`, title: grantId } : grantId);

  // The grant the verdict names: its watermark's, else its manifest's (verdicts.named_grant_state).
  const namedGrant = (result) => (result.watermark || {}).grant || (result.c2pa || {}).consent || {};

  // Of a verdict's parts written per grant state (data-state), keep the one for this grant's
  // state where there is one, else the general one (data-state=""). Words only: the answer's
  // grant state, which the details show too, and nothing more of the grant.
  function forGrantState(root, state) {
    const parts = [...root.querySelectorAll("[data-state]")];
    const own = new Set(parts.filter((part) => part.dataset.state === state).map((part) => part.tagName));
    for (const part of parts) {
      const general = part.dataset.state === "" && !own.has(part.tagName);
      if (part.dataset.state !== state && !general) part.remove();
    }
    return root;
  }

  // The values the verdict texts name, from the likeness.verify/1 object.
  function facts(result) {
    const watermark = result.watermark || {};
    const c2pa = result.c2pa || {};
    const grant = namedGrant(result);
    const render = watermark.ledger_entry || {};
    const faces = (result.faces && result.faces.faces) || [];
    const matched = faces.find((face) => face.match) || {};
    const bySlug = faces.map((face) => face.match).find((match) => match && match.slug === grant.subject_slug);
    let artist = word("unnamed");
    if (grant.subject_slug) artist = (bySlug && bySlug.name) || grant.subject_slug;
    else if (matched.match && matched.match.name) artist = matched.match.name;
    return {
      artist,
      org: grant.org_name || grant.org_slug,
      when: (render.recorded_at || "").slice(0, 10),
      grant: shortGrant(grant.grant_id),
      use: useWord(grant.use || render.use),
      state: stateWord(grant.state),
      signer: c2pa.signer,
    };
  }

  // ``source`` is the visitor's file; null for a shared result (/r/<sha256>), which has no file
  // to draw, report or share again.
  function showResult(result, source) {
    // Our visible label with neither our watermark nor a manifest behind it: a label anyone can
    // draw (service/verdicts.py's shows_label_only; the headline must not say "no AI label").
    const labelOnly = Boolean(result.visible_label && result.visible_label.present)
      && !(result.watermark && result.watermark.found) && !(result.c2pa && result.c2pa.present);
    const template = (labelOnly && texts.querySelector(`template[data-verdict="${result.verdict}"][data-label-only]`))
      || texts.querySelector(`template[data-verdict="${result.verdict}"]:not([data-label-only])`)
      || texts.querySelector('template[data-verdict="error"]');
    const card = el("article", { class: `card verdict-card ${template.dataset.tone}`, "data-verdict": result.verdict });
    card.append(forGrantState(fill(template.content.cloneNode(true), facts(result)), namedGrant(result).state || ""));
    if (labelOnly && result.verdict !== "error") card.append(el("p", { "data-label-only": "", text: word("label-only") }));
    if (source) {
      // the name as the visitor's phone gave it (the server's copy is sanitised: "직캠 _1_.jpg")
      card.append(fitFace(el("p", { class: "muted small filename" }, [`${word("file")}: `, source.name || ""])));
      card.append(shareButton(result));
    } else {
      card.append(fill(texts.querySelector('[data-word="shared-on"]').cloneNode(true), { date: word("shared-date") }));
    }
    resultBox.replaceChildren(card, details(result, source));
    if (source) resultBox.append(reportForm(source));
    const again = el("button", { type: "button", class: "wide", text: word("check-another") });
    again.addEventListener("click", () => { resultBox.hidden = true; input.value = ""; choose(null); input.focus(); });
    resultBox.append(again);
    resultBox.hidden = false;
    resultBox.focus();
  }

  // A failed fetch rejects with an Error, not a problem: the connection, as far as the page knows.
  const orNetwork = (problem) => (problem && problem.type ? problem : { type: "network" });

  // "Create a link": the server stores the answer it gave for this file (never the file).
  function shareButton(result) {
    const box = el("div", { class: "share" });
    const button = el("button", { type: "button", class: "wide", "data-share": "", text: word("share") });
    box.append(button, el("p", { class: "muted small", text: word("share-note") }));
    button.addEventListener("click", () => {
      button.disabled = true;
      const body = new FormData();
      body.append("sha256", result.sha256);
      fetch("/api/v1/public/links", { method: "POST", body })
        .then((response) => response.json().then((answer) => ({ ok: response.ok, answer })))
        .then(({ ok, answer }) => {
          if (!ok) throw answer;
          const url = new URL(answer.url, window.location.href).href;
          box.replaceChildren(el("p", { class: "small", role: "status" },
            [`${word("shared")} `, el("a", { href: url, class: "filename", "data-link": "", text: url })]));
        })
        .catch((problem) => {
          button.disabled = false;
          box.append(el("p", { class: "alert bad", role: "alert", text: problemText(orNetwork(problem)) }));
        });
    });
    return box;
  }

  // "Report this to the agency": the same file again, with the visitor's optional contact and
  // note sent before it (the server keeps this upload; a plain check keeps nothing).
  function reportForm(source) {
    const report = texts.querySelector("template[data-report]").content.firstElementChild.cloneNode(true);
    report.addEventListener("submit", (event) => {
      event.preventDefault();
      const button = report.querySelector("button[type=submit]");
      button.disabled = true;
      const body = new FormData();
      body.append("contact", report.elements.contact.value);
      body.append("note", report.elements.note.value);
      body.append("file", source, source.name);
      fetch(report.action, { method: "POST", body })
        .then((response) => response.json().then((answer) => ({ ok: response.ok, answer })))
        .then(({ ok, answer }) => {
          if (!ok) throw answer;
          report.replaceChildren(el("p", { class: "alert good", role: "status", "data-case": answer.case_id,
            text: word("reported") }));
        })
        .catch((problem) => {
          button.disabled = false;
          report.append(el("p", { class: "alert bad", role: "alert", text: problemText(orNetwork(problem)) }));
        });
    });
    return report;
  }

  const row = (list, label, value, raw) => {
    if (value === undefined || value === null || value === "") return;
    const dd = el("dd", { text: Array.isArray(value) ? value.join(", ") : String(value) });
    if (raw) dd.title = Array.isArray(raw) ? raw.join(", ") : String(raw);
    list.append(el("dt", { text: label }), dd);
  };
  // A grant's id as code (copied whole into a complaint) and its state today in words.
  const grantRows = (list, grant) => {
    if (!grant || !grant.grant_id) return;
    list.append(el("dt", { text: word("grant") }), el("dd", {}, [el("code", { class: "grant-id", text: grant.grant_id })]));
    row(list, word("grant-state"), grant.state && inWords("state", grant.state), grant.state);
  };

  function details(result, source) {
    const box = el("details", { class: "card more" }, [el("summary", { text: word("details") })]);
    const c2pa = result.c2pa || {};
    box.append(el("h3", { text: word("c2pa") }));
    if (c2pa.present) {
      const list = el("dl", { class: "facts" });
      row(list, word("signer"), c2pa.signer);
      row(list, word("c2pa-state"), inWords("c2pa", c2pa.state), c2pa.state);
      const actions = c2pa.actions || [];
      row(list, word("actions"), actions.map((action) => inWords("action", action)), actions);
      const sourceType = (c2pa.digital_source_type || "").split("/").pop();
      row(list, word("source-type"), inWords("source", sourceType), c2pa.digital_source_type);
      grantRows(list, c2pa.consent);
      box.append(list);
      if (c2pa.consent_assertion) {
        box.append(el("p", { class: "muted small", text: word("consent") }),
          el("pre", { class: "assertion", tabindex: "0", text: JSON.stringify(c2pa.consent_assertion, null, 2) }));
      }
    } else box.append(el("p", { class: "muted", text: word("c2pa-none") }));

    const mark = result.watermark || {};
    box.append(el("h3", { text: word("watermark") }));
    if (mark.found) {
      const list = el("dl", { class: "facts" });
      row(list, word("payload"), mark.payload);
      row(list, word("confidence"), mark.bit_confidence === null ? null : Number(mark.bit_confidence).toFixed(2));
      const render = mark.ledger_entry || {};
      row(list, word("render"), render.job_id);
      row(list, word("recorded"), render.recorded_at);
      grantRows(list, mark.grant);
      box.append(list);
    } else box.append(el("p", { class: "muted", text: word("watermark-none") }));
    const label = result.visible_label;
    if (label) {
      const list = el("dl", { class: "facts" });
      row(list, word("label"), label.present ? word("yes") : word("no"));
      box.append(list);
    }
    const faces = (result.faces && result.faces.faces) || [];
    if (source && (faces.length || (result.faces && result.faces.frames_analysed))) {
      box.append(el("h3", { text: word("frames") }));
      const strip = el("div", { class: "frames", "data-frames": "" });
      box.append(strip);
      // A clip this browser cannot play (an AVI; an iPhone's HEVC .MOV outside Safari) left the
      // heading over nothing: say why, and that the verdict does not depend on it.
      drawPictures(strip, source, result).catch(() =>
        strip.replaceWith(el("p", { class: "muted", "data-frames-note": "", text: word("no-frames") })));
    }
    return box;
  }

  // Thumbnails of the analysed picture or frames with the face boxes, drawn from the file the
  // visitor chose (the server sends no pixels back).
  async function drawPictures(strip, source, result) {
    const faces = result.faces.faces || [];
    const times = result.media_type === "video" ? [...new Set(faces.map((f) => f.best_timestamp_s))] : [0];
    const frames = result.media_type === "video" ? await videoFrames(source, times) : [await createImageBitmap(source)];
    frames.forEach((frame, index) => {
      const here = faces.filter((face) => result.media_type !== "video" || face.best_timestamp_s === times[index]);
      const scale = Math.min(1, 320 / Math.max(frame.width, frame.height));
      const canvas = el("canvas", { width: Math.round(frame.width * scale), height: Math.round(frame.height * scale),
        role: "img", "aria-label": `${word("frames")} ${index + 1}` });
      const pen = canvas.getContext("2d");
      pen.drawImage(frame, 0, 0, canvas.width, canvas.height);
      pen.lineWidth = 3;
      for (const face of here) {
        const [x0, y0, x1, y1] = face.bbox.map((v) => v * scale);
        pen.strokeStyle = face.match ? "#b3261e" : "#3a4fd8";
        pen.strokeRect(x0, y0, x1 - x0, y1 - y0);
        pen.fillStyle = pen.strokeStyle;
        pen.font = "bold 14px NanumGothicPage, sans-serif";
        pen.fillText(`${word("face")} ${face.face_id}`, x0 + 2, Math.max(14, y0 - 4));
      }
      strip.append(canvas);
    });
  }

  const sharedNode = document.querySelector("[data-shared]");
  if (sharedNode) {
    form.before(resultBox); // the shared card first: that is what the link was opened for
    showResult(JSON.parse(sharedNode.textContent), null);
  }

  function videoFrames(source, times) {
    return new Promise((resolve, reject) => {
      const video = document.createElement("video");
      video.muted = true;
      video.preload = "auto";
      const url = URL.createObjectURL(source);
      const frames = [];
      let index = 0;
      const next = () => {
        if (index >= times.length) { URL.revokeObjectURL(url); resolve(frames); return; }
        video.currentTime = Math.min(times[index], Math.max(0, video.duration - 0.05));
      };
      video.addEventListener("seeked", () => {
        const canvas = document.createElement("canvas");
        canvas.width = video.videoWidth;
        canvas.height = video.videoHeight;
        canvas.getContext("2d").drawImage(video, 0, 0);
        frames.push(canvas);
        index += 1;
        next();
      });
      video.addEventListener("loadeddata", next, { once: true });
      video.addEventListener("error", () => { URL.revokeObjectURL(url); reject(new Error("video")); });
      video.src = url;
    });
  }
})();
