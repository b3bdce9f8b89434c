// The rights-holder portal: WebAuthn ceremonies. The server sends the options (for signing,
// the challenge is the SHA-256 of the exact grant or revocation payload) and verifies the answer.
(() => {
  "use strict";
  const enc = (buffer) => btoa(String.fromCharCode(...new Uint8Array(buffer)))
    .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  const dec = (text) => {
    const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    const padded = base64 + "=".repeat((4 - (base64.length % 4)) % 4);
    return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
  };

  async function post(url, body, csrf) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json", "x-csrf-token": csrf || "" },
      body: JSON.stringify(body || {}),
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = new Error(data.detail || data.title || response.statusText);
      error.reason = data.reason;
      error.type = data.type || "";
      error.detail = data.detail || "";
      throw error;
    }
    return data;
  }

  function creation(options) {
    options.challenge = dec(options.challenge);
    options.user.id = dec(options.user.id);
    (options.excludeCredentials || []).forEach((c) => { c.id = dec(c.id); });
    return options;
  }

  function request(options) {
    options.challenge = dec(options.challenge);
    (options.allowCredentials || []).forEach((c) => { c.id = dec(c.id); });
    return options;
  }

  const registration = (credential) => ({
    id: credential.id,
    rawId: enc(credential.rawId),
    type: credential.type,
    response: {
      clientDataJSON: enc(credential.response.clientDataJSON),
      attestationObject: enc(credential.response.attestationObject),
    },
    clientExtensionResults: {},
  });

  const assertion = (credential) => ({
    id: credential.id,
    rawId: enc(credential.rawId),
    type: credential.type,
    response: {
      clientDataJSON: enc(credential.response.clientDataJSON),
      authenticatorData: enc(credential.response.authenticatorData),
      signature: enc(credential.response.signature),
    },
    clientExtensionResults: {},
  });

  // A command-line flag in a detail stays on one line (the stylesheet's .flag), the rest wraps.
  // (No lookbehind in the pattern: a Safari before 16.4 would refuse the whole script.)
  function withFlagsUnbroken(node, text) {
    node.replaceChildren();
    let shown = 0;
    for (const found of text.matchAll(/(^|[^\w-])(--[A-Za-z][\w-]*)/g)) {
      const start = found.index + found[1].length;
      const flag = document.createElement("span");
      flag.className = "flag";
      flag.textContent = found[2];
      node.append(text.slice(shown, start), flag);
      shown = start + found[2].length;
    }
    node.append(text.slice(shown));
  }

  // A problem's sentence in the page's language, by its type and a refusal's reason (the server
  // renders them into the page, as problems.page_sentence picks them); below it the problem's own English detail and reason, which name what was refused.
  function showError(error) {
    const box = document.querySelector("[data-passkey-error]");
    if (!box) return;
    const code = String(error.type || "").split(":").pop();
    const sentences = document.querySelector("template[data-problem-sentences]");
    const find = (key) => (sentences ? sentences.content.querySelector(`[data-problem="${CSS.escape(key)}"]`) : null);
    const sentence = (code && error.reason && find(`${code}-${error.reason}`)) || (code && find(code)) || null;
    const exact = [error.detail || (sentence ? "" : error.message), error.reason ? `(${error.reason})` : ""]
      .filter(Boolean).join(" ");
    box.querySelector("[data-passkey-error-sentence]").textContent = sentence ? sentence.textContent : exact;
    const detail = box.querySelector("[data-passkey-error-detail]");
    withFlagsUnbroken(detail.querySelector("code"), exact);
    detail.hidden = !sentence || !exact;
    box.hidden = false;
  }

  // A holder who signs offline gets the new passkey's registration statement to vouch for with
  // their own key on their machine; the page offers it as a file and shows what to check.
  function showStatement(statement) {
    const box = document.querySelector("[data-vouch-statement]");
    if (!box) return;
    const file = new Blob([JSON.stringify(statement, null, 2) + "\n"], { type: "application/json" });
    box.querySelector("[data-statement-download]").href = URL.createObjectURL(file);
    box.querySelector("[data-statement-fingerprint]").textContent = statement.key_fingerprint;
    document.querySelectorAll("[data-passkey-register], [data-link-note]").forEach((e) => { e.hidden = true; });
    box.hidden = false;
  }

  async function create(optionsUrl, finishUrl, extra, csrf) {
    const started = await post(optionsUrl, extra, csrf);
    const credential = await navigator.credentials.create({ publicKey: creation(started.publicKey) });
    return post(finishUrl, { ...extra, ceremony_id: started.ceremony_id, credential: registration(credential) }, csrf);
  }

  async function get(optionsUrl, finishUrl, extra, csrf) {
    const started = await post(optionsUrl, extra, csrf);
    const credential = await navigator.credentials.get({ publicKey: request(started.publicKey) });
    return post(finishUrl, { ceremony_id: started.ceremony_id, credential: assertion(credential) }, csrf);
  }

  const actions = {
    "data-passkey-register": (b) => create("/portal/api/register/options", "/portal/api/register", { token: b.dataset.token }),
    "data-passkey-add": async (b) => {
      // the new passkey, then the current one signs its registration
      const signing = await create("/portal/api/passkeys/options", "/portal/api/passkeys", {}, b.dataset.csrf);
      const credential = await navigator.credentials.get({ publicKey: request(signing.publicKey) });
      return post("/portal/api/passkeys/confirm",
        { ceremony_id: signing.ceremony_id, credential: assertion(credential) }, b.dataset.csrf);
    },
    "data-passkey-signin": () => get("/portal/api/signin/options", "/portal/api/signin", {}),
    "data-passkey-sign": (b) => {
      const base = `/portal/api/requests/${encodeURIComponent(b.dataset.request)}/sign`;
      return get(`${base}/options`, base, {}, b.dataset.csrf);
    },
    "data-passkey-revoke": (b) => {
      const base = `/portal/api/grants/${encodeURIComponent(b.dataset.grant)}/revoke`;
      const reason = (document.querySelector("input[name=reason]") || {}).value || "";
      return get(`${base}/options`, base, { reason }, b.dataset.csrf);
    },
  };

  document.addEventListener("click", async (event) => {
    for (const [attribute, action] of Object.entries(actions)) {
      const button = event.target.closest(`[${attribute}]`);
      if (!button) continue;
      event.preventDefault();
      if (!window.PublicKeyCredential) {
        showError(new Error(document.documentElement.lang === "ko"
          ? "이 브라우저는 패스키를 지원하지 않습니다." : "This browser does not support passkeys."));
        return;
      }
      button.disabled = true;
      try {
        const done = await action(button);
        if (done.statement) {
          showStatement(done.statement);
          return;
        }
        window.location.assign(done.redirect || "/portal");
      } catch (error) {
        if (error.type === "urn:likeness:problem:already-decided") {
          // signed, declined or revoked in another tab (or before going back): the page says so
          window.location.reload();
          return;
        }
        showError(error);
        button.disabled = false;
      }
      return;
    }
  });
})();

// A made thing's thumbnail whose file is gone or no longer matches its hash (the server answers
// 404) becomes the plain line the page shows where no file is kept, never a broken image.
(() => {
  "use strict";
  const plain = (img) => {
    const line = document.createElement("div");
    line.className = "made-kind";
    line.textContent = img.dataset.fallback;
    img.replaceWith(line);
  };
  document.addEventListener("error", (event) => {
    if (event.target instanceof HTMLImageElement && event.target.dataset.fallback) plain(event.target);
  }, true);
  for (const img of document.querySelectorAll("img[data-fallback]")) {
    if (img.complete && img.naturalWidth === 0) plain(img);  // failed before this ran
  }
})();
