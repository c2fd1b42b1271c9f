// The tracker's logic in node (node --test): consent, storage, batching, retries, exit flush.
// A fake browser environment records requests and runs timers by hand.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createTracker, retryAfterMs, backoffMs } from "../src/zmot.js";

function fakeEnv({ answers = [], item = null } = {}) {
  const store = new Map();
  const timers = [];
  const listeners = {};
  const env = {
    requests: [],
    beacons: [],
    timers,
    cookies: {},
    listeners,
    fetch: (url, init = {}) => {
      env.requests.push({ url, ...init, json: init.body ? JSON.parse(init.body) : undefined });
      const next = answers.length ? answers.shift() : { status: 202 };
      if (next instanceof Error) return Promise.reject(next);
      return Promise.resolve({
        status: next.status,
        ok: next.status < 400,
        headers: { get: (name) => (next.headers || {})[name.toLowerCase()] ?? null },
        json: () => Promise.resolve(next.body ?? {}),
      });
    },
    sendBeacon: (url, blob) => {
      env.beacons.push({ url, blob });
      return true;
    },
    storage: {
      getItem: (k) => (store.has(k) ? store.get(k) : null),
      setItem: (k, v) => store.set(k, String(v)),
      removeItem: (k) => store.delete(k),
      dump: () => Object.fromEntries(store),
    },
    document: {
      get cookie() {
        return Object.entries(env.cookies).map(([k, v]) => `${k}=${v}`).join("; ");
      },
      set cookie(text) {
        const [pair, ...attrs] = text.split("; ");
        const [name, value] = pair.split("=");
        if (attrs.includes("Max-Age=0")) delete env.cookies[name];
        else env.cookies[name] = value;
      },
      querySelector: (sel) => (sel === "[data-zmot-item]" && item ? { getAttribute: () => item } : null),
    },
    window: {
      addEventListener: (name, fn) => (listeners[name] = fn),
      removeEventListener: (name) => delete listeners[name],
    },
    setTimeout: (fn, ms) => {
      timers.push({ fn, ms });
      return timers.length;
    },
    clearTimeout: (id) => {
      if (timers[id - 1]) timers[id - 1].fn = null;
    },
    now: () => 1_800_000_000_000,
    random: () => 0.5,
    crypto: null,
    location: { protocol: "https:" },
    language: "de-DE",
  };
  env.runTimers = async () => {
    const due = timers.splice(0);
    for (const t of due) if (t.fn) t.fn();
    await new Promise((r) => setImmediate(r));
  };
  return env;
}

const settle = () => new Promise((r) => setImmediate(r));

test("without consent nothing is sent and nothing is stored", async () => {
  const env = fakeEnv({ item: "SKU-1" });
  const z = createTracker(env);
  z.init({ endpoint: "https://api.test", key: "k" });
  assert.equal(z.search("tv"), false);
  assert.equal(z.addToCart("SKU-1"), false);
  await z.flush();
  await env.runTimers();
  assert.deepEqual(env.requests, []);
  assert.deepEqual(env.storage.dump(), {});
  assert.deepEqual(env.cookies, {});
  assert.equal(z.anonymousId(), null);
  env.listeners.pagehide();
  assert.deepEqual(env.beacons, []);
});

test("with consent events are batched with an anonymous id kept in cookie and storage", async () => {
  const env = fakeEnv({ item: "SKU-1" });
  const z = createTracker(env);
  z.init({ endpoint: "https://api.test/", key: "secret", consent: true, batchSize: 3 });
  z.search("fernseher reparatur");
  assert.equal(env.requests.length, 0); // two events: waiting for the batch or the timer
  z.addToCart("SKU-2");
  await settle();
  assert.equal(env.requests.length, 1);
  const [request] = env.requests;
  assert.equal(request.url, "https://api.test/v1/events");
  assert.equal(request.headers.Authorization, "Bearer secret");
  assert.equal(request.headers["Content-Type"], "application/json");
  assert.deepEqual(request.json.map((e) => e.type), ["page_view", "search", "add_to_cart"]);
  const anon = z.anonymousId();
  assert.match(anon, /^anon-[0-9a-f-]{36}$/);
  assert.ok(request.json.every((e) => e.user_id === anon && e.event_id && e.ts === 1_800_000_000_000 && e.channel === "web"));
  assert.equal(request.json[0].item_id, "SKU-1");
  assert.equal(env.storage.getItem("zmot_aid"), anon);
  assert.equal(decodeURIComponent(env.cookies.zmot_aid), anon);
  assert.equal(z._queue().length, 0);
  assert.equal(env.storage.getItem("zmot_queue"), null);
});

test("a 429 is retried after Retry-After with the same events; 503 backs off", async () => {
  const env = fakeEnv({ answers: [{ status: 429, headers: { "retry-after": "3" } }, { status: 503 }, { status: 202 }] });
  const z = createTracker(env);
  z.init({ endpoint: "", consent: true, autoPageView: false, backoffMs: 100 });
  z.search("tv");
  await z.flush();
  await settle();
  assert.equal(env.timers.at(-1).ms, 3000);
  await env.runTimers();
  await settle();
  assert.equal(env.requests.length, 2);
  assert.equal(env.timers.at(-1).ms, 100 * 2 * 0.75); // attempt 1: 100 * 2^1, jitter 0.75
  await env.runTimers();
  await settle();
  assert.equal(env.requests.length, 3);
  const ids = env.requests.map((r) => r.json[0].event_id);
  assert.equal(new Set(ids).size, 1);
  assert.equal(z._queue().length, 0);
});

test("offline: events wait in a bounded queue that survives the page", async () => {
  const env = fakeEnv({ answers: [new Error("offline")] });
  const z = createTracker(env);
  z.init({ endpoint: "", consent: true, autoPageView: false, maxQueue: 3, batchSize: 100, maxAttempts: 1 });
  for (const q of ["a", "b", "c", "d", "e"]) z.search(q);
  await z.flush();
  await settle();
  assert.deepEqual(z._queue().map((e) => e.query), ["c", "d", "e"]);
  assert.equal(JSON.parse(env.storage.getItem("zmot_queue")).length, 3);
  z._stop();
  // The next page restores and sends them.
  const next = createTracker(env);
  next.init({ endpoint: "", consent: true, autoPageView: false });
  await next.flush();
  await settle();
  assert.equal(env.requests.at(-1).json.length, 3);
  assert.equal(env.storage.getItem("zmot_queue"), null);
});

test("refused for good (422, 403) is dropped, not retried", async () => {
  const errors = [];
  const env = fakeEnv({ answers: [{ status: 403 }] });
  const z = createTracker(env);
  z.init({ endpoint: "", consent: true, autoPageView: false, onError: (e) => errors.push(e) });
  z.track("purchase", { item_id: "x" });
  await z.flush();
  await settle();
  assert.equal(z._queue().length, 0);
  assert.equal(env.timers.filter((t) => t.fn).length, 0);
  assert.match(String(errors[0]), /403/);
});

test("pagehide hands the queue to sendBeacon without a key, to fetch keepalive with one", async () => {
  const env = fakeEnv();
  const z = createTracker(env);
  z.init({ endpoint: "http://shop.test", consent: true, autoPageView: false, flushIntervalMs: 60000 });
  z.search("tv");
  env.listeners.pagehide();
  assert.equal(env.beacons.length, 1);
  assert.equal(env.beacons[0].url, "http://shop.test/v1/events");
  assert.equal(env.beacons[0].blob.type, "application/json");
  assert.equal(JSON.parse(await env.beacons[0].blob.text())[0].query, "tv");
  assert.equal(z._queue().length, 0);
  z._stop();

  const keyed = fakeEnv();
  const k = createTracker(keyed);
  k.init({ endpoint: "", key: "secret", consent: true, autoPageView: false, flushIntervalMs: 60000 });
  k.search("tv");
  keyed.listeners.pagehide();
  assert.equal(keyed.beacons.length, 0);
  assert.equal(keyed.requests[0].keepalive, true);
  assert.equal(keyed.requests[0].headers.Authorization, "Bearer secret");
});

test("consent(false) forgets the device's ids and queue and records the refusal", async () => {
  const env = fakeEnv();
  const z = createTracker(env);
  z.init({ endpoint: "", consent: true, autoPageView: false, flushIntervalMs: 60000, maxAttempts: 1 });
  z.search("tv");
  const anonymous = z.anonymousId();
  assert.equal(await z.identify("customer-9"), true);
  assert.equal(z.userId(), "customer-9");
  const posted = env.requests.filter((r) => r.method === "POST");
  assert.deepEqual(posted.map((r) => r.url), ["/v1/events", "/v1/users/customer-9/links"]);
  assert.equal(posted[0].json[0].user_id, anonymous); // tracked before identify: anonymous id
  assert.deepEqual(posted[1].json, { anonymous_id: anonymous });
  const recorded = await z.consent(false);
  assert.equal(recorded, true);
  const put = env.requests.at(-1);
  assert.equal(put.method, "PUT");
  assert.equal(put.url, "/v1/users/customer-9/consent");
  assert.deepEqual(put.json, { profiling: false });
  assert.deepEqual(env.storage.dump(), {});
  assert.deepEqual(env.cookies, {});
  assert.equal(z._queue().length, 0);
  assert.equal(z.search("tv"), false);
  await z.consent(true);
  assert.deepEqual(env.requests.at(-1).json, { profiling: true });
  assert.ok(z.search("tv"));
});

test("no exception escapes: a throwing fetch, storage or handler", async () => {
  const env = fakeEnv();
  env.fetch = () => {
    throw new Error("boom");
  };
  env.storage = {
    getItem: () => {
      throw new Error("denied");
    },
    setItem: () => {
      throw new Error("denied");
    },
    removeItem: () => {
      throw new Error("denied");
    },
  };
  const z = createTracker(env);
  z.init({ endpoint: "", consent: true, onError: () => {
    throw new Error("handler");
  } });
  assert.doesNotThrow(() => z.search("tv"));
  assert.doesNotThrow(() => z.flush());
  assert.doesNotThrow(() => z.offers({ placement: "home" }));
  assert.doesNotThrow(() => z.consent(false));
  assert.doesNotThrow(() => z.init(null));
});

test("offers asks with the visitor's id, placement, context item and language", async () => {
  const answer = { user_id: "x", offers: [{ offer_id: "o1" }], decision_id: "d1" };
  const env = fakeEnv({ answers: [{ status: 200, body: answer }] });
  const z = createTracker(env);
  // Asked before init (a widget upgraded before the page's init call): waits for init.
  const asked = z.offers({ placement: "product_page", k: 3, contextItem: "SKU-1" });
  await settle();
  assert.equal(env.requests.length, 0);
  z.init({ endpoint: "https://api.test", consent: false });
  const got = await asked;
  assert.deepEqual(got, answer);
  const url = new URL(env.requests[0].url);
  assert.equal(url.pathname, "/v1/next-best-offer");
  assert.match(url.searchParams.get("user_id"), /^anon-/);
  assert.equal(url.searchParams.get("placement"), "product_page");
  assert.equal(url.searchParams.get("k"), "3");
  assert.equal(url.searchParams.get("context_item"), "SKU-1");
  assert.equal(env.requests[0].headers["Accept-Language"], "de-DE");
  assert.deepEqual(env.storage.dump(), {}); // the page id of a visitor without consent is not stored
});

test("Retry-After and backoff arithmetic", () => {
  assert.equal(retryAfterMs("2", 0), 2000);
  assert.equal(retryAfterMs(null, 0), null);
  assert.equal(retryAfterMs("Thu, 01 Jan 2026 00:00:10 GMT", Date.UTC(2026, 0, 1)), 10000);
  const options = { backoffMs: 500, maxBackoffMs: 4000, maxRetryAfterMs: 60000 };
  assert.equal(backoffMs(0, null, options, () => 0), 250);
  assert.equal(backoffMs(10, null, options, () => 0.999999), 4000 * (0.5 + 0.5 * 0.999999));
  assert.equal(backoffMs(0, 90000, options, Math.random), 60000);
});
