// A TCP forwarder that resets every connection through it once a period: a flaky path to the
// API server. TLS passes through untouched. Run as a script it is the forwarder itself, in the
// current network namespace (the control plane listens on that namespace's loopback, so the
// forwarder must live there too): argv[2] is host:port to forward to, argv[3] the period in ms.
// It prints "listening <port>", then "drops <ticks that reset a connection> <connections reset>"
// after every such tick. startDroppingProxy runs it in a topology's namespace.
import { connect, createServer, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { GiveUp, waitFor, type NsProcess, type Topology } from '../../ts/demo/topology.js';

export interface DroppingProxy {
  /** https://127.0.0.1:<port>: where a kubeconfig points to go through the forwarder. */
  server: string;
  /** Ticks that reset at least one connection, and connections reset, so far. */
  drops(): { ticks: number; connections: number };
  stop(): Promise<void>;
}

/** An RST, not a FIN: the peer sees ECONNRESET, as when a middlebox or a node goes away. */
function reset(s: Socket): void {
  try {
    s.resetAndDestroy();
  } catch {
    s.destroy();
  }
}

function serve(target: string, periodMs: number): void {
  const colon = target.lastIndexOf(':');
  const [host, port] = [target.slice(0, colon), Number(target.slice(colon + 1))];
  const clients = new Set<Socket>();
  let ticks = 0;
  let connections = 0;
  const server = createServer((client) => {
    const upstream = connect({ host, port });
    clients.add(client);
    // Whichever side goes, the other is reset with it: nothing half-open survives a drop.
    const pair = [client, upstream];
    for (const s of pair) {
      s.on('error', () => {});
      s.on('close', () => {
        clients.delete(client);
        for (const other of pair) if (other !== s && !other.destroyed) reset(other);
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  server.listen({ host: '127.0.0.1', port: 0 }, () => {
    process.stdout.write(`listening ${(server.address() as { port: number }).port}\n`);
  });
  setInterval(() => {
    if (!clients.size) return;
    ticks++;
    connections += clients.size;
    for (const s of [...clients]) reset(s);
    process.stdout.write(`drops ${ticks} ${connections}\n`);
  }, periodMs);
}

/** Starts the forwarder in `ns`, to `target` (host:port there), resetting every `periodMs`. */
export async function startDroppingProxy(topo: Topology, ns: string, target: string, periodMs = 1000): Promise<DroppingProxy> {
  const child: NsProcess = topo.spawnIn(ns, 'node', ['--import', 'tsx', fileURLToPath(import.meta.url), target, String(periodMs)]);
  const port = await waitFor('the dropping proxy to listen', async () => {
    if (child.exitCode !== null) throw new GiveUp(`dropping proxy exited ${child.exitCode}:\n${child.output()}`);
    return /^listening (\d+)$/m.exec(child.output())?.[1];
  }, { timeoutMs: 15_000 });
  return {
    server: `https://127.0.0.1:${port}`,
    drops: () => {
      const last = [...child.output().matchAll(/^drops (\d+) (\d+)$/gm)].pop();
      return { ticks: Number(last?.[1] ?? 0), connections: Number(last?.[2] ?? 0) };
    },
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      // `ip netns exec` gave it its own process group (spawnIn's detached): signal all of it.
      try {
        process.kill(-child.pid!, 'SIGTERM');
      } catch {}
      await child.exited;
    },
  };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) serve(process.argv[2], Number(process.argv[3] ?? 1000));
