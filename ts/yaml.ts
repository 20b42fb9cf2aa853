// The yaml package, loaded on first use. Its ~80 modules cost ~0.1 s of every start, and most
// starts read no YAML at all: in-cluster config, a JSON kubeconfig, no --config file.
import { createRequire } from 'node:module';

type Yaml = typeof import('yaml');
const require = createRequire(import.meta.url);
let loaded: Yaml | undefined;

export function yaml(): Yaml {
  return (loaded ??= require('yaml') as Yaml);
}
