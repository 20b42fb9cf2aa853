// The random syncs both fault children run (fault-child.ts for nftables mode, iptables-fault-
// child.ts for iptables mode): seeded, so a failure reruns the same way (FAULT_SEED).
import { clusterIPServicePort, readyEndpoint } from '../../ts/model/build.js';
import type { ServicePort } from '../../ts/model/types.js';

export interface Change {
  upserts: ServicePort[];
  deletes: string[];
}

export class RandomCluster {
  private seed: number;
  readonly live = new Map<number, ServicePort>();

  constructor(seed: number, services = 30) {
    this.seed = seed;
    for (let i = 0; i < services; i++) this.live.set(i, this.randomPort(i));
  }

  rand(n: number): number {
    this.seed = (this.seed * 1103515245 + 12345) % 2 ** 31;
    return this.seed % n;
  }

  private randomPort(i: number): ServicePort {
    const endpoints = Array.from({ length: this.rand(6) }, (_, k) => readyEndpoint(`10.244.${1 + this.rand(20)}.${2 + k}`, 8080));
    return clusterIPServicePort({ namespace: 'ns', name: `s${i}`, portName: 'http', protocol: this.rand(4) === 0 ? 'UDP' : 'TCP', clusterIP: `10.96.0.${1 + i}`, port: 80, endpoints });
  }

  /** Everything, for a full sync. */
  all(): Change {
    return { upserts: [...this.live.values()], deletes: [] };
  }

  /** The next change: a few ServicePorts re-drawn, deleted or added. */
  change(): Change {
    const upserts: ServicePort[] = [];
    const deletes: string[] = [];
    for (let k = 1 + this.rand(3); k > 0; k--) {
      const i = this.rand(40);
      const old = this.live.get(i);
      if (old && this.rand(4) === 0) {
        deletes.push(old.key);
        this.live.delete(i);
      } else {
        // A protocol change is a new key: the old one goes.
        const next = this.randomPort(i);
        if (old && old.key !== next.key) deletes.push(old.key);
        this.live.set(i, next);
        upserts.push(next);
      }
    }
    return { upserts: upserts.filter((u) => !deletes.includes(u.key)), deletes: deletes.filter((d) => !upserts.some((u) => u.key === d)) };
  }
}
