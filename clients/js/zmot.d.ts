// Types of the zmot browser tracker and offer widget (src/zmot.js, dist/zmot.js).

export interface InitOptions {
  /** Base URL of the zmot API ("" or omitted: this page's origin). */
  endpoint?: string;
  /** A browser key (events:write with views/searches/carts/feedback, offers:read, origins). */
  key?: string | null;
  /** True once the visitor agreed to profiling; until then nothing is sent or stored. */
  consent?: boolean;
  /** Events per request (default 20). */
  batchSize?: number;
  /** Longest wait before a partial batch is sent (ms, default 1000). */
  flushIntervalMs?: number;
  /** Most events kept while the API cannot be reached; the oldest go first (default 500). */
  maxQueue?: number;
  /** Tries per batch before it waits for the next event or page (default 6). */
  maxAttempts?: number;
  /** First backoff (ms, default 500), doubled per try up to maxBackoffMs (default 30000). */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** Longest Retry-After honoured (ms, default 120000). */
  maxRetryAfterMs?: number;
  /** Send a page_view of the page's [data-zmot-item] element at init (default true). */
  autoPageView?: boolean;
  /** consent() also calls PUT /v1/users/{id}/consent (default true; needs profiles:erase). */
  recordConsent?: boolean;
  /** Channel of every event (default "web"). */
  channel?: "web" | "app" | "email" | "store" | "ad" | null;
  /** Called with what went wrong; the tracker never throws into the page. */
  onError?: ((error: unknown) => void) | null;
}

export type EventType =
  | "page_view"
  | "search"
  | "add_to_cart"
  | "purchase"
  | "impression"
  | "click"
  | "dismiss"
  | "review";

export interface EventFields {
  item_id?: string;
  query?: string;
  offer_id?: string;
  placement?: string;
  decision_id?: string;
  rating?: number;
}

export interface Offer {
  offer_id: string;
  item_id: string;
  title: string;
  category: string | null;
  score: number;
  reasons: string[];
  policy: string;
  probability: number;
  debug?: Record<string, number | null>;
}

export interface OfferAnswer {
  user_id: string;
  offers: Offer[];
  model_version: string;
  fallback: boolean;
  placement: string | null;
  stage: string;
  decision_id: string | null;
  catalog_version: string | null;
  note: string | null;
  personalised: boolean;
}

export interface OffersQuery {
  placement?: string;
  k?: number;
  contextItem?: string;
  /** Language of the reasons (default: the browser's). */
  language?: string;
}

export interface Tracker {
  readonly version: string;
  init(options: InitOptions): Tracker | null;
  /** Give (true) or withdraw (false) consent; resolves to whether the API recorded it. */
  consent(given: boolean): Promise<boolean>;
  hasConsent(): boolean;
  /** The id events are sent with: the identified user, else the anonymous id. */
  userId(): string | null;
  anonymousId(): string | null;
  /** Each returns whether the event was queued (false without consent). */
  pageView(itemId?: string): boolean;
  page_view(itemId?: string): boolean;
  search(query: string): boolean;
  addToCart(itemId: string): boolean;
  track(type: EventType, fields?: EventFields): boolean;
  /** Later events carry userId; the anonymous history is linked to it (POST .../links). */
  identify(userId: string): Promise<boolean>;
  flush(): Promise<void>;
  /** The next best offers for this visitor; null on any failure. */
  offers(query?: OffersQuery): Promise<OfferAnswer | null>;
}

export interface TrackerEnv {
  fetch: typeof fetch | null;
  sendBeacon: ((url: string, data: Blob) => boolean) | null;
  storage: Storage | null;
  document: Document | null;
  window: Window | null;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(id: unknown): void;
  now(): number;
  random(): number;
  crypto: Crypto | null;
  location: Location | null;
  language: string | null;
}

export declare function createTracker(env?: TrackerEnv): Tracker;
export declare function browserEnv(): TrackerEnv;
export declare function defineOffersElement(tracker: Tracker, registry?: CustomElementRegistry): boolean;
export declare function retryAfterMs(value: string | null, nowMs: number): number | null;
export declare function backoffMs(
  attempt: number,
  retryAfter: number | null,
  options: Required<Pick<InitOptions, "backoffMs" | "maxBackoffMs" | "maxRetryAfterMs">>,
  random: () => number,
): number;

export declare const zmot: Tracker;
export default zmot;

declare global {
  interface Window {
    zmot: Tracker & {
      createTracker: typeof createTracker;
      defineOffersElement: typeof defineOffersElement;
    };
  }
  interface HTMLElementTagNameMap {
    "zmot-offers": HTMLElement & { answer?: OfferAnswer | null };
  }
}
