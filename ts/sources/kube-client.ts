// How kproxy reaches the API server: a kubeconfig (or in-cluster config) reduced to a server,
// TLS material and a credential, and two request shapes, a JSON request and a watch stream.
//
// Why not client-node's KubeConfig for everything: importing it loads the whole generated
// API (0.6 s of CPU and ~70 MiB of RSS at start), on the path to the first sync. The plain
// cases (token, token file, client certificate, basic auth, in-cluster) are read here; a
// user with an `exec` or `auth-provider` plugin is handed to client-node, imported then.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { dirname, isAbsolute, join } from 'node:path';
import { createInterface } from 'node:readline';
import { yaml } from '../yaml.js';
import { ListSplitter } from './list-splitter.js';
import { decodeObject, type MessageSchema } from './protobuf/decode.js';
import { STATUS } from './protobuf/schemas.js';
import { ProtoListSplitter, ProtoWatchFrames } from './protobuf/stream.js';

const PROTOBUF = 'application/vnd.kubernetes.protobuf';
/** As client-go for built-in types: protobuf preferred, JSON accepted (an aggregated or older server). */
const ACCEPT_PROTOBUF = { Accept: `${PROTOBUF}, application/json` };

export interface ApiEndpoint {
  /** e.g. https://10.0.0.1:6443 (no trailing slash). */
  server: string;
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  insecure?: boolean;
  tlsServerName?: string;
  /** The Authorization header, asked for on every request (token files rotate). */
  authorization?: () => string | undefined;
  /** A kubeconfig user with a plugin: client-node fills in the request's TLS and headers. */
  plugin?: (opts: https.RequestOptions) => Promise<void>;
}

const IN_CLUSTER_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** The file's contents at most this old (client-go re-reads a token file every minute). */
function cachedFile(path: string, maxAgeMs = 60_000): () => string {
  let value = '';
  let readAt = -Infinity;
  return () => {
    if (Date.now() - readAt > maxAgeMs) {
      value = readFileSync(path, 'utf8').trim();
      readAt = Date.now();
    }
    return value;
  };
}

/** --kubeconfig, else in-cluster; --master overrides the server (as clientcmd does). */
export function loadApiEndpoint(opts: { kubeconfig?: string; master?: string }): ApiEndpoint {
  let ep: ApiEndpoint;
  if (opts.kubeconfig) ep = fromKubeconfigFile(opts.kubeconfig);
  else if (opts.master) ep = { server: opts.master };
  else if (process.env.KUBERNETES_SERVICE_HOST) ep = inCluster();
  else throw new Error('no --kubeconfig or --master, and not running in a cluster (KUBERNETES_SERVICE_HOST is unset)');
  if (opts.master) ep = { ...ep, server: opts.master };
  return { ...ep, server: ep.server.replace(/\/+$/, '') };
}

function inCluster(): ApiEndpoint {
  const host = process.env.KUBERNETES_SERVICE_HOST!;
  const port = process.env.KUBERNETES_SERVICE_PORT ?? '443';
  const token = cachedFile(join(IN_CLUSTER_DIR, 'token'));
  return {
    server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
    ca: readFileSync(join(IN_CLUSTER_DIR, 'ca.crt')),
    authorization: () => `Bearer ${token()}`,
  };
}

const named = (list: unknown, name: string, what: string): Record<string, any> => {
  const entry = Array.isArray(list) ? list.find((e) => e?.name === name) : undefined;
  if (!entry?.[what]) throw new Error(`kubeconfig: no ${what} named "${name}"`);
  return entry[what];
};

/** JSON needs no YAML parser (most generated kubeconfigs); anything else is YAML, as clientcmd reads it. */
function parseConfigText(text: string): any {
  if (text.trimStart().startsWith('{')) {
    try {
      return JSON.parse(text);
    } catch {
      // a YAML flow mapping: `{apiVersion: v1, ...}`
    }
  }
  return yaml().parse(text);
}

export function fromKubeconfigFile(file: string): ApiEndpoint {
  const text = readFileSync(file, 'utf8');
  // JSON is YAML too; parsed as JSON, it needs no YAML parser at all.
  const doc = parseConfigText(text) ?? {};
  const contextName = doc['current-context'];
  if (typeof contextName !== 'string' || !contextName) throw new Error(`kubeconfig ${file}: no current-context`);
  const context = named(doc.contexts, contextName, 'context');
  const cluster = named(doc.clusters, context.cluster, 'cluster');
  const user = context.user ? named(doc.users, context.user, 'user') : {};
  const base = dirname(file);
  const path = (p: string) => (isAbsolute(p) ? p : join(base, p));
  const material = (data: unknown, p: unknown) =>
    typeof data === 'string' ? Buffer.from(data, 'base64') : typeof p === 'string' ? readFileSync(path(p)) : undefined;
  if (typeof cluster.server !== 'string') throw new Error(`kubeconfig ${file}: cluster "${context.cluster}" has no server`);
  const ep: ApiEndpoint = {
    server: cluster.server,
    ca: material(cluster['certificate-authority-data'], cluster['certificate-authority']),
    insecure: cluster['insecure-skip-tls-verify'] === true,
    tlsServerName: cluster['tls-server-name'],
    cert: material(user['client-certificate-data'], user['client-certificate']),
    key: material(user['client-key-data'], user['client-key']),
  };
  if (user.exec || user['auth-provider']) ep.plugin = pluginAuth(file);
  else if (typeof user.token === 'string') ep.authorization = () => `Bearer ${user.token}`;
  else if (typeof user.tokenFile === 'string') {
    const token = cachedFile(path(user.tokenFile));
    ep.authorization = () => `Bearer ${token()}`;
  } else if (typeof user.username === 'string') {
    const basic = `Basic ${Buffer.from(`${user.username}:${user.password ?? ''}`).toString('base64')}`;
    ep.authorization = () => basic;
  }
  return ep;
}

/** exec and auth-provider credentials, through client-node (loaded on first use). */
function pluginAuth(file: string): (opts: https.RequestOptions) => Promise<void> {
  let kc: Promise<{ applyToHTTPSOptions(o: https.RequestOptions): Promise<void> }> | undefined;
  return async (opts) => {
    kc ??= import('@kubernetes/client-node').catch((err: Error) => {
      throw new Error(`${file}: its exec or auth-provider credentials need @kubernetes/client-node, which did not load on Node ${process.versions.node}` +
        ` (${err.message}); its undici 8 needs Node >= 22.19 where kproxy is installed from npm: use Node 22 or 24, or a token or certificate kubeconfig`);
    }).then(({ KubeConfig }) => {
      const c = new KubeConfig();
      c.loadFromFile(file);
      return c;
    });
    // A failed load is tried again at the next request, not cached.
    await (await kc.catch((err) => {
      kc = undefined;
      throw err;
    })).applyToHTTPSOptions(opts);
  };
}

async function requestOptions(ep: ApiEndpoint, method: string, extraHeaders: Record<string, string | number>): Promise<https.RequestOptions> {
  const opts: https.RequestOptions = { method, headers: {} };
  if (ep.plugin) await ep.plugin(opts);
  else {
    Object.assign(opts, { ca: ep.ca, cert: ep.cert, key: ep.key, rejectUnauthorized: !ep.insecure, servername: ep.tlsServerName });
    const auth = ep.authorization?.();
    if (auth) (opts.headers as Record<string, string>).Authorization = auth;
  }
  opts.headers = { ...(opts.headers as object), Accept: 'application/json', 'User-Agent': 'kproxy', ...extraHeaders };
  return opts;
}

function send(url: URL, opts: https.RequestOptions): http.ClientRequest {
  return (url.protocol === 'http:' ? http : https).request(url, opts);
}

/** A whole response body. */
function readBody(res: http.IncomingMessage, done: (buf: Buffer) => void): void {
  const chunks: Buffer[] = [];
  res.on('data', (c: Buffer) => chunks.push(c));
  res.on('end', () => done(Buffer.concat(chunks)));
}

const isProtobuf = (res: http.IncomingMessage) => (res.headers['content-type'] ?? '').startsWith(PROTOBUF);

/** An error answer's body: the API's Status object (JSON or protobuf), else nothing. */
function statusBody(res: http.IncomingMessage, buf: Buffer): any {
  try {
    if (isProtobuf(res)) return decodeObject(buf, STATUS);
    return buf.length === 0 ? undefined : JSON.parse(buf.toString('utf8'));
  } catch {
    return undefined;
  }
}

/** What an error answer says: the Status message, else the body as text. */
function errorMessage(res: http.IncomingMessage, buf: Buffer): string {
  return statusBody(res, buf)?.message ?? (isProtobuf(res) ? '' : buf.toString('utf8'));
}

export class ApiError extends Error {
  constructor(message: string, readonly statusCode: number) {
    super(message);
  }
}

/** One request; resolves with the status and the parsed JSON body (undefined when empty). */
export async function apiRequest(ep: ApiEndpoint, method: string, pathAndQuery: string, body?: unknown, timeoutMs = 60_000): Promise<{ status: number; json: any }> {
  const url = new URL(ep.server + pathAndQuery);
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const opts = await requestOptions(ep, method, payload === undefined ? {} : { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) });
  return new Promise((resolve, reject) => {
    const req = send(url, opts);
    req.on('response', (res) => {
      res.on('error', reject);
      readBody(res, (buf) => {
        if (res.statusCode !== 200) return resolve({ status: res.statusCode ?? 0, json: statusBody(res, buf) });
        try {
          resolve({ status: 200, json: buf.length === 0 ? undefined : JSON.parse(buf.toString('utf8')) });
        } catch (e) {
          reject(e);
        }
      });
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${url.pathname} timed out`)));
    req.on('error', reject);
    req.end(payload);
  });
}

/**
 * A list, its items handed to onItem one by one as the response arrives; resolves with the
 * status and the list's own fields (metadata), or the error body when not 200. With a
 * protobuf schema it asks for protobuf, as client-go does for built-in types, and reads
 * whichever the server sends.
 */
export async function listRequest(
  ep: ApiEndpoint, pathAndQuery: string, onItem: (item: any) => void, protobuf?: MessageSchema, timeoutMs = 60_000,
): Promise<{ status: number; json: any; encoding?: 'protobuf' | 'json' }> {
  const url = new URL(ep.server + pathAndQuery);
  const opts = await requestOptions(ep, 'GET', protobuf ? ACCEPT_PROTOBUF : {});
  return new Promise((resolve, reject) => {
    const req = send(url, opts);
    req.on('response', (res) => {
      res.on('error', reject);
      const encoding = isProtobuf(res) ? 'protobuf' : 'json';
      if (res.statusCode !== 200) return readBody(res, (buf) => resolve({ status: res.statusCode ?? 0, json: statusBody(res, buf), encoding }));
      if (encoding === 'protobuf' && !protobuf) return res.destroy(new Error(`GET ${url.pathname}: protobuf answer to a JSON request`));
      const splitter = encoding === 'protobuf' ? new ProtoListSplitter(protobuf!, onItem) : new ListSplitter(onItem);
      res.on('data', (c: Buffer) => {
        try {
          splitter.push(c);
        } catch (err) {
          req.destroy();
          reject(err);
        }
      });
      res.on('end', () => {
        try {
          resolve({ status: 200, json: splitter.end(), encoding });
        } catch (err) {
          reject(err);
        }
      });
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`GET ${url.pathname} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/** A watch with nothing on it this long is taken for dead. */
const WATCH_IDLE_MS = 180_000;

export interface WatchEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: any;
}

/**
 * A watch: calls onEvent for each event of the stream (JSON lines, or protobuf frames when a
 * schema is given and the server sends them), resolves when the server ends it (its
 * timeout), rejects on a non-200 answer or a broken connection. abort() ends it early.
 */
export async function watchStream(
  ep: ApiEndpoint, pathAndQuery: string, onEvent: (e: WatchEvent) => void, signal: AbortSignal, idleMs = WATCH_IDLE_MS, protobuf?: MessageSchema,
): Promise<void> {
  const url = new URL(ep.server + pathAndQuery);
  const opts = await requestOptions(ep, 'GET', protobuf ? ACCEPT_PROTOBUF : {});
  return new Promise((resolve, reject) => {
    if (signal.aborted) return resolve();
    const req = send(url, opts);
    const onAbort = () => {
      req.destroy();
      resolve();
    };
    signal.addEventListener('abort', onAbort, { once: true });
    const settle = (fn: () => void) => {
      signal.removeEventListener('abort', onAbort);
      fn();
    };
    req.on('error', (err) => settle(() => (signal.aborted ? resolve() : reject(err))));
    // A connection that went silent (a dead peer, a dropped NAT entry) must not hold the watch
    // for ever: the server sends a bookmark about every minute, so minutes of nothing mean it is gone.
    req.setTimeout(idleMs, () => req.destroy(new Error(`watch ${url.pathname}: nothing received for ${idleMs / 1000} s`)));
    req.on('response', (res) => {
      res.on('error', (err) => settle(() => (signal.aborted ? resolve() : reject(err))));
      if (res.statusCode !== 200) {
        return readBody(res, (buf) => {
          const message = errorMessage(res, buf);
          settle(() => reject(new ApiError(`watch ${url.pathname}: HTTP ${res.statusCode}: ${message}`, res.statusCode ?? 0)));
        });
      }
      let failed = false;
      const fail = (err: unknown) => {
        failed = true;
        req.destroy();
        settle(() => reject(err));
      };
      res.on('aborted', () => settle(() => (signal.aborted ? resolve() : reject(new Error(`watch ${url.pathname}: connection lost`)))));
      if (protobuf && isProtobuf(res)) {
        const frames = new ProtoWatchFrames(protobuf, (e) => onEvent(e as WatchEvent));
        res.on('data', (c: Buffer) => {
          if (failed) return;
          try {
            frames.push(c);
          } catch (err) {
            fail(err);
          }
        });
        // A stream cut inside a frame lost an event (the JSON path's partial line fails too).
        res.on('end', () => settle(() => (frames.pending > 0 && !failed ? reject(new Error(`watch ${url.pathname}: stream ended inside an event`)) : resolve())));
        return;
      }
      const lines = createInterface({ input: res, crlfDelay: Infinity });
      // readline re-emits its input's errors (a reset connection): handled on res above.
      lines.on('error', () => {});
      lines.on('line', (line) => {
        if (failed || line === '') return;
        try {
          onEvent(JSON.parse(line));
        } catch (err) {
          fail(err);
        }
      });
      lines.on('close', () => settle(() => resolve()));
    });
    req.end();
  });
}
