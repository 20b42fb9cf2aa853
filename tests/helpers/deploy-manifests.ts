// deploy/'s manifests as the tests read them: the files its kustomization lists, parsed, and
// the few things about them more than one test needs (the ConfigMap volume and its path, the
// ClusterRole's rules as verb/group/resource triples).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { REPO_ROOT } from '../../ts/demo/topology.js';

export const DEPLOY_DIR = join(REPO_ROOT, 'deploy');

export type Obj = Record<string, any>;

/** The kustomization, and every object of the files it lists (in order). */
export function loadDeploy(dir = DEPLOY_DIR): { kustomization: Obj; objects: Obj[] } {
  const kustomization = parseFile(join(dir, 'kustomization.yaml'))[0];
  const objects = (kustomization.resources as string[]).flatMap((file) => parseFile(join(dir, file)));
  return { kustomization, objects };
}

export function parseFile(path: string): Obj[] {
  return parseAllDocuments(readFileSync(path, 'utf8')).map((d) => {
    if (d.errors.length > 0) throw new Error(`${path}: ${d.errors[0].message}`);
    return d.toJS() as Obj;
  }).filter((o) => o !== null);
}

export function findObject(objects: Obj[], kind: string, name?: string): Obj {
  const found = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata?.name === name));
  if (found.length !== 1) throw new Error(`expected one ${kind}${name ? ` ${name}` : ''} in deploy/, found ${found.length}`);
  return found[0];
}

/** "verb group/resource" for every verb of every rule ("" is the core group), sorted. */
export function ruleTriples(role: Obj): string[] {
  const out: string[] = [];
  for (const r of role.rules as Obj[]) {
    for (const g of r.apiGroups) for (const res of r.resources) for (const v of r.verbs) out.push(`${v} ${g}/${res}`);
  }
  return out.sort();
}

/** The DaemonSet's one container, and where the ConfigMap `cmName` is mounted in it. */
export function configMount(ds: Obj, cmName: string): { container: Obj; mountPath: string } {
  const pod = ds.spec.template.spec;
  const volume = (pod.volumes as Obj[]).find((v) => v.configMap?.name === cmName);
  if (!volume) throw new Error(`the DaemonSet mounts no ConfigMap ${cmName}`);
  const container = pod.containers[0];
  const mount = (container.volumeMounts as Obj[]).find((m) => m.name === volume.name);
  if (!mount) throw new Error(`volume ${volume.name} is not mounted`);
  return { container, mountPath: mount.mountPath };
}
