// zmot browser tracker and offer widget: one dependency-free ES module.
// `node build.mjs` writes dist/zmot.js, the same code as one IIFE for a <script> tag
// (window.zmot). Everything public is wrapped so that no exception reaches the shop's page.

const VERSION = "0.1.0";
const ANON_KEY = "zmot_aid";
const USER_KEY = "zmot_uid";
const QUEUE_KEY = "zmot_queue";
const COOKIE_DAYS = 365;

const DEFAULTS = {
  endpoint: "",
  key: null,
  consent: false,
  batchSize: 20,
  flushIntervalMs: 1000,
  maxQueue: 500,
  maxAttempts: 6,
  backoffMs: 500,
  maxBackoffMs: 30000,
  maxRetryAfterMs: 120000,
  autoPageView: true,
  recordConsent: true,
  channel: "web",
  onError: null,
};

/** Milliseconds a Retry-After header asks for (seconds or an HTTP date), or null. */
export function retryAfterMs(value, nowMs) {
  if (value === null || value === undefined || String(value).trim() === "") return null;
  const text = String(value).trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const when = Date.parse(text);
  if (Number.isNaN(when)) return null;
  return Math.max(0, when - nowMs);
}

/** Wait before the next try: the server's Retry-After, else exponential with jitter. */
export function backoffMs(attempt, retryAfter, options, random) {
  if (retryAfter !== null && retryAfter !== undefined) {
    return Math.min(retryAfter, options.maxRetryAfterMs);
  }
  const ceiling = Math.min(options.maxBackoffMs, options.backoffMs * 2 ** attempt);
  return ceiling * (0.5 + 0.5 * random());
}

function uuid(env) {
  if (env.crypto && typeof env.crypto.randomUUID === "function") return env.crypto.randomUUID();
  const hex = [];
  for (let i = 0; i < 32; i += 1) hex.push(Math.floor(env.random() * 16).toString(16));
  return `${hex.slice(0, 8).join("")}-${hex.slice(8, 12).join("")}-4${hex.slice(13, 16).join("")}-${hex.slice(16, 20).join("")}-${hex.slice(20).join("")}`;
}

/** What the tracker needs from the browser; tests pass their own. */
export function browserEnv() {
  const g = globalThis;
  return {
    fetch: g.fetch ? g.fetch.bind(g) : null,
    sendBeacon: g.navigator && g.navigator.sendBeacon ? g.navigator.sendBeacon.bind(g.navigator) : null,
    storage: (() => {
      try {
        return g.localStorage || null;
      } catch (_) {
        return null; // storage disabled by the browser
      }
    })(),
    document: g.document || null,
    window: typeof g.addEventListener === "function" ? g : null,
    setTimeout: g.setTimeout.bind(g),
    clearTimeout: g.clearTimeout.bind(g),
    now: () => Date.now(),
    random: Math.random,
    crypto: g.crypto || null,
    location: g.location || null,
    language: g.navigator ? g.navigator.language : null,
  };
}

/** The first-party id store: a cookie and localStorage, both written only with consent. */
function idStore(env) {
  const doc = env.document;
  const readCookie = (name) => {
    if (!doc || typeof doc.cookie !== "string") return null;
    const hit = doc.cookie.split(/;\s*/).find((part) => part.startsWith(`${name}=`));
    return hit ? decodeURIComponent(hit.slice(name.length + 1)) : null;
  };
  const writeCookie = (name, value, days) => {
    if (!doc) return;
    try {
      const secure = env.location && env.location.protocol === "https:" ? "; Secure" : "";
      doc.cookie = `${name}=${encodeURIComponent(value)}; Max-Age=${Math.round(days * 86400)}; Path=/; SameSite=Lax${secure}`;
    } catch (_) {
      /* cookies disabled */
    }
  };
  const storage = env.storage;
  return {
    get(name) {
      try {
        const stored = storage ? storage.getItem(name) : null;
        return stored || readCookie(name);
      } catch (_) {
        return readCookie(name);
      }
    },
    set(name, value) {
      writeCookie(name, value, COOKIE_DAYS);
      try {
        if (storage) storage.setItem(name, value);
      } catch (_) {
        /* quota or disabled */
      }
    },
    remove(name) {
      writeCookie(name, "", 0);
      try {
        if (storage) storage.removeItem(name);
      } catch (_) {
        /* disabled */
      }
    },
  };
}

/**
 * A tracker. `createTracker(env)` with a test environment; the page's is `zmot` below.
 *
 * Consent first: until consent is given (init({consent: true}) or consent(true)) no event is
 * kept or sent and nothing is written to cookies or localStorage; consent(false) forgets the
 * ids and the queue on the device.
 */
export function createTracker(env = browserEnv()) {
  let options = { ...DEFAULTS };
  let started = false;
  let consented = false;
  let queue = [];
  let timer = null;
  let attempt = 0;
  let sending = false;
  let pageId = null; // an id for reading offers without consent: never stored
  const ids = idStore(env);
  const listeners = [];
  let markReady = null;
  // Offers asked for before init (a widget upgraded before the page's init call) wait for it.
  const ready = new Promise((resolve) => {
    markReady = resolve;
  });

  const report = (error) => {
    try {
      if (typeof options.onError === "function") options.onError(error);
    } catch (_) {
      /* the shop's handler failed: ignore */
    }
  };
  const safe = (fn, fallback) =>
    function guarded(...args) {
      try {
        return fn.apply(this, args);
      } catch (error) {
        report(error);
        return fallback;
      }
    };

  const url = (path) => `${options.endpoint.replace(/\/+$/, "")}${path}`;
  const headers = (json) => {
    const out = {};
    if (json) out["Content-Type"] = "application/json";
    if (options.key) out.Authorization = `Bearer ${options.key}`;
    return out;
  };

  function userId() {
    if (!consented) {
      if (!pageId) pageId = `anon-${uuid(env)}`;
      return pageId;
    }
    const known = ids.get(USER_KEY);
    if (known) return known;
    let anon = ids.get(ANON_KEY);
    if (!anon) {
      anon = `anon-${uuid(env)}`;
      ids.set(ANON_KEY, anon);
    }
    return anon;
  }

  function persist() {
    if (!consented || !env.storage) return;
    try {
      if (queue.length) env.storage.setItem(QUEUE_KEY, JSON.stringify(queue));
      else env.storage.removeItem(QUEUE_KEY);
    } catch (_) {
      /* quota: the queue stays in memory */
    }
  }

  function restore() {
    if (!env.storage) return;
    try {
      const saved = JSON.parse(env.storage.getItem(QUEUE_KEY) || "[]");
      if (Array.isArray(saved)) queue = saved.concat(queue).slice(-options.maxQueue);
    } catch (_) {
      /* unreadable: start empty */
    }
  }

  function schedule(delay) {
    if (timer !== null || !queue.length) return;
    timer = env.setTimeout(() => {
      timer = null;
      flush();
    }, delay);
  }

  function enqueue(type, fields) {
    if (!started || !consented) return false; // consent first: nothing kept, nothing sent
    const event = { user_id: userId(), type, ts: env.now(), event_id: uuid(env) };
    if (options.channel) event.channel = options.channel;
    for (const [name, value] of Object.entries(fields || {})) {
      if (value !== undefined && value !== null && value !== "") event[name] = value;
    }
    queue.push(event);
    if (queue.length > options.maxQueue) queue.splice(0, queue.length - options.maxQueue);
    persist();
    if (queue.length >= options.batchSize) flush();
    else schedule(options.flushIntervalMs);
    return true;
  }

  /** Send up to one batch; retries 429/503 and network failures with backoff. */
  function flush() {
    if (!started || !consented || sending || !queue.length || !env.fetch) return Promise.resolve();
    if (timer !== null) {
      env.clearTimeout(timer);
      timer = null;
    }
    const batch = queue.slice(0, options.batchSize);
    sending = true;
    const done = (keep, delay) => {
      sending = false;
      if (!keep) {
        queue = queue.filter((event) => !batch.includes(event));
        attempt = 0;
        persist();
        if (queue.length) schedule(0);
        return;
      }
      attempt += 1;
      if (attempt >= options.maxAttempts) {
        // Kept (bounded) for a later page or a later event, not retried in a loop.
        attempt = 0;
        return;
      }
      schedule(delay);
    };
    return env
      .fetch(url("/v1/events"), { method: "POST", headers: headers(true), body: JSON.stringify(batch), keepalive: true })
      .then(
        (response) => {
          if (response.status === 429 || response.status === 503) {
            const wait = retryAfterMs(response.headers && response.headers.get ? response.headers.get("Retry-After") : null, env.now());
            done(true, backoffMs(attempt, wait, options, env.random));
          } else {
            if (response.status >= 400) report(new Error(`zmot: POST /v1/events answered ${response.status}`));
            done(false); // sent, or refused for good (401/403/413/422): retrying cannot help
          }
        },
        (error) => {
          report(error);
          done(true, backoffMs(attempt, null, options, env.random)); // offline: keep, try later
        },
      )
      .catch(report);
  }

  /** On pagehide: hand what is queued to the browser, which sends it after the page is gone. */
  function flushOnExit() {
    if (!consented || !queue.length) return;
    const body = JSON.stringify(queue.slice(0, options.maxQueue));
    let handed = false;
    if (!options.key && env.sendBeacon && typeof Blob !== "undefined") {
      // sendBeacon cannot send an Authorization header: used for keyless (same-site) APIs.
      handed = env.sendBeacon(url("/v1/events"), new Blob([body], { type: "application/json" }));
    } else if (env.fetch) {
      env.fetch(url("/v1/events"), { method: "POST", headers: headers(true), body, keepalive: true }).catch(() => {});
      handed = true;
    }
    if (handed) {
      queue = [];
      persist();
    }
  }

  function listen(target, name, handler) {
    if (!target || typeof target.addEventListener !== "function") return;
    target.addEventListener(name, handler);
    listeners.push(() => target.removeEventListener(name, handler));
  }

  function pageItem() {
    const doc = env.document;
    if (!doc || typeof doc.querySelector !== "function") return null;
    const tagged = doc.querySelector("[data-zmot-item]");
    return tagged ? tagged.getAttribute("data-zmot-item") : null;
  }

  function recordConsent(profiling) {
    if (!options.recordConsent || !env.fetch) return Promise.resolve(false);
    const id = profiling ? userId() : ids.get(USER_KEY) || ids.get(ANON_KEY);
    if (!id) return Promise.resolve(false);
    return env
      .fetch(url(`/v1/users/${encodeURIComponent(id)}/consent`), {
        method: "PUT",
        headers: headers(true),
        body: JSON.stringify({ profiling }),
        keepalive: true,
      })
      .then((response) => response.status < 400, (error) => (report(error), false));
  }

  function fetchOffers(q) {
    if (!env.fetch) return null;
    const params = new URLSearchParams({ user_id: userId() });
    if (q.k) params.set("k", String(q.k));
    if (q.placement) params.set("placement", q.placement);
    if (q.contextItem) params.set("context_item", q.contextItem);
    if (options.channel) params.set("channel", options.channel);
    const h = headers(false);
    const language = q.language || env.language;
    if (language) h["Accept-Language"] = language;
    return env
      .fetch(url(`/v1/next-best-offer?${params}`), { headers: h })
      .then((response) => (response.ok ? response.json() : null))
      .catch((error) => (report(error), null));
  }

  const api = {
    version: VERSION,
    init: safe((given) => {
      options = { ...DEFAULTS, ...(given || {}) };
      started = true;
      consented = options.consent === true;
      if (consented) restore();
      listen(env.window, "pagehide", safe(flushOnExit));
      listen(env.window, "online", safe(() => flush()));
      if (options.autoPageView) {
        const item = pageItem();
        if (item) enqueue("page_view", { item_id: item });
      }
      if (queue.length) schedule(0);
      markReady();
      return api;
    }, null),
    consent: safe((given) => {
      const was = consented;
      consented = given === true;
      let recorded;
      if (consented) {
        recorded = recordConsent(true);
        if (!was) restore();
      } else {
        recorded = recordConsent(false);
        queue = [];
        ids.remove(ANON_KEY);
        ids.remove(USER_KEY);
        try {
          if (env.storage) env.storage.removeItem(QUEUE_KEY);
        } catch (_) {
          /* disabled */
        }
      }
      return recorded;
    }, Promise.resolve(false)),
    hasConsent: () => consented,
    userId: safe(() => userId(), null),
    pageView: safe((itemId) => enqueue("page_view", { item_id: itemId || pageItem() || undefined }) , false),
    search: safe((query) => enqueue("search", { query: String(query || "").slice(0, 512) }), false),
    addToCart: safe((itemId) => enqueue("add_to_cart", { item_id: itemId }), false),
    track: safe((type, fields) => enqueue(type, fields), false),
    /** Later events carry the known id; the anonymous history is linked to it (served with
     * it, erased with it). Resolves to whether the API stored the link. */
    identify: safe((id) => {
      if (!consented || !id || !env.fetch) return Promise.resolve(false);
      const known = String(id);
      const anonymous = ids.get(ANON_KEY);
      flush(); // what was tracked anonymously goes out under the anonymous id
      ids.set(USER_KEY, known);
      if (!anonymous || anonymous === known) return Promise.resolve(false);
      return env
        .fetch(url(`/v1/users/${encodeURIComponent(known)}/links`), {
          method: "POST",
          headers: headers(true),
          body: JSON.stringify({ anonymous_id: anonymous }),
          keepalive: true,
        })
        .then((response) => response.status < 400, (error) => (report(error), false));
    }, Promise.resolve(false)),
    anonymousId: safe(() => (consented ? ids.get(ANON_KEY) : null), null),
    flush: safe(() => flush(), Promise.resolve()),
    /** The next best offers for this visitor (null on any failure). */
    offers: safe((query) => ready.then(() => fetchOffers(query || {})).catch((error) => (report(error), null)), Promise.resolve(null)),
    _queue: () => queue.slice(),
    _stop: () => {
      while (listeners.length) listeners.pop()();
      if (timer !== null) env.clearTimeout(timer);
      timer = null;
      started = false;
    },
  };
  api.page_view = api.pageView;
  return api;
}

/**
 * <zmot-offers placement="product_page" k="3" context-item="SKU-1">: fetches the next best
 * offers, renders each with its title and reasons (or fills the shop's own <template> child:
 * elements with data-field="title|reasons|item_id|category|offer_id"), and reports an
 * impression once an offer is half visible, a click, and a dismissal (the × button), each
 * with the answer's decision_id.
 */
export function defineOffersElement(tracker, registry = globalThis.customElements) {
  if (!registry || typeof HTMLElement === "undefined" || registry.get("zmot-offers")) return false;
  class ZmotOffers extends HTMLElement {
    static get observedAttributes() {
      return ["placement", "k", "context-item"];
    }

    connectedCallback() {
      this.load();
    }

    attributeChangedCallback(_name, before, after) {
      if (this.isConnected && before !== after && this.answer !== undefined) this.load();
    }

    disconnectedCallback() {
      if (this.observer) this.observer.disconnect();
    }

    load() {
      try {
        if (!this.template) this.template = this.querySelector("template");
        const placement = this.getAttribute("placement") || undefined;
        const k = Number(this.getAttribute("k")) || undefined;
        const contextItem = this.getAttribute("context-item") || undefined;
        this.setAttribute("aria-busy", "true");
        return tracker.offers({ placement, k, contextItem, language: document.documentElement.lang || undefined }).then(
          (answer) => this.show(answer, placement),
          () => this.show(null, placement),
        );
      } catch (_) {
        return Promise.resolve();
      }
    }

    feedback(type, offer, placement) {
      tracker.track(type, { offer_id: offer.offer_id, placement, decision_id: this.answer && this.answer.decision_id });
    }

    show(answer, placement) {
      try {
        this.answer = answer;
        this.removeAttribute("aria-busy");
        if (this.observer) this.observer.disconnect();
        for (const old of Array.from(this.querySelectorAll(".zmot-offer"))) old.remove();
        const offers = answer && Array.isArray(answer.offers) ? answer.offers : [];
        this.dataset.decisionId = (answer && answer.decision_id) || "";
        this.dataset.count = String(offers.length);
        const seen = new Set();
        this.observer =
          typeof IntersectionObserver === "function"
            ? new IntersectionObserver(
                (entries) => {
                  for (const entry of entries) {
                    const id = entry.target.dataset.offerId;
                    if (entry.isIntersecting && !seen.has(id)) {
                      seen.add(id);
                      entry.target.dataset.seen = "true";
                      this.feedback("impression", { offer_id: id }, placement);
                    }
                  }
                },
                { threshold: 0.5 },
              )
            : null;
        for (const offer of offers) {
          const card = this.render(offer);
          card.classList.add("zmot-offer");
          card.dataset.offerId = offer.offer_id;
          card.dataset.itemId = offer.item_id;
          card.addEventListener("click", (event) => {
            if (event.target.closest && event.target.closest(".zmot-dismiss")) return;
            this.feedback("click", offer, placement);
            this.dispatchEvent(new CustomEvent("zmot-click", { detail: { offer, decision_id: answer.decision_id }, bubbles: true }));
          });
          const dismiss = document.createElement("button");
          dismiss.type = "button";
          dismiss.className = "zmot-dismiss";
          dismiss.setAttribute("aria-label", "dismiss");
          dismiss.textContent = "\u00d7";
          dismiss.addEventListener("click", () => {
            this.feedback("dismiss", offer, placement);
            card.remove();
          });
          card.appendChild(dismiss);
          this.appendChild(card);
          if (this.observer) this.observer.observe(card);
        }
        this.dispatchEvent(new CustomEvent("zmot-offers", { detail: answer, bubbles: true }));
      } catch (_) {
        /* a broken answer renders nothing */
      }
    }

    render(offer) {
      if (this.template) {
        const fragment = this.template.content.cloneNode(true);
        const root = fragment.firstElementChild || document.createElement("div");
        for (const slot of Array.from(fragment.querySelectorAll("[data-field]"))) {
          const name = slot.getAttribute("data-field");
          if (name === "reasons") {
            for (const reason of offer.reasons || []) {
              const li = document.createElement("li");
              li.textContent = reason;
              slot.appendChild(li);
            }
          } else if (offer[name] !== undefined && offer[name] !== null) {
            slot.textContent = String(offer[name]);
          }
        }
        return root;
      }
      const card = document.createElement("div");
      const title = document.createElement("strong");
      title.className = "zmot-title";
      title.textContent = offer.title;
      const reasons = document.createElement("ul");
      reasons.className = "zmot-reasons";
      for (const reason of offer.reasons || []) {
        const li = document.createElement("li");
        li.textContent = reason;
        reasons.appendChild(li);
      }
      card.append(title, reasons);
      return card;
    }
  }
  registry.define("zmot-offers", ZmotOffers);
  return true;
}

/** The page's tracker (window.zmot in the IIFE build). */
export const zmot = createTracker(typeof window !== "undefined" ? browserEnv() : undefined);
if (typeof window !== "undefined") {
  try {
    defineOffersElement(zmot);
  } catch (_) {
    /* no custom elements: the tracker still works */
  }
}
export default zmot;
