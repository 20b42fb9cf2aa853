// Reading an OCI image archive (what `buildah push oci-archive:` writes) without unpacking it:
// its config and every layer entry, with the fields that make two images the same layout.
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';

export interface Entry {
  path: string;
  /** '0' file, '2' symlink, '5' directory, … (tar's typeflag). */
  type: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  link: string;
  /** xattr name → hex value, e.g. security.capability. */
  xattrs: Record<string, string>;
}

export interface OciImage {
  config: { User?: string; Entrypoint?: string[]; Cmd?: string[]; Env?: string[]; WorkingDir?: string; Labels?: Record<string, string> };
  architecture: string;
  entries: Entry[];
  /** The layers' bytes as stored in the archive (compressed when they are). */
  layerBytes: number;
}

const BLOCK = 512;
const str = (b: Buffer, at: number, len: number) => b.subarray(at, at + len).toString('latin1').replace(/\0.*$/s, '');
const oct = (b: Buffer, at: number, len: number) => parseInt(str(b, at, len).trim() || '0', 8);

/** The entries of a tar stream: ustar headers with pax ('x') and GNU long-name ('L') extensions. */
export function readTar(buf: Buffer): Map<string, { entry: Entry; data: Buffer }> {
  const out = new Map<string, { entry: Entry; data: Buffer }>();
  let pax: Record<string, string> = {};
  let longName: string | undefined;
  for (let at = 0; at + BLOCK <= buf.length;) {
    const h = buf.subarray(at, at + BLOCK);
    if (h.every((x) => x === 0)) break;
    const size = oct(h, 124, 12);
    const type = str(h, 156, 1) || '0';
    const data = buf.subarray(at + BLOCK, at + BLOCK + size);
    at += BLOCK + Math.ceil(size / BLOCK) * BLOCK;
    if (type === 'x') {
      pax = parsePax(data);
      continue;
    }
    if (type === 'L') {
      longName = str(data, 0, data.length);
      continue;
    }
    const prefix = str(h, 345, 155);
    const name = pax.path ?? longName ?? (prefix ? `${prefix}/${str(h, 0, 100)}` : str(h, 0, 100));
    const xattrs: Record<string, string> = {};
    for (const [k, v] of Object.entries(pax)) if (k.startsWith('SCHILY.xattr.')) xattrs[k.slice(13)] = Buffer.from(v, 'latin1').toString('hex');
    const entry: Entry = {
      path: name.replace(/^\.?\//, '').replace(/\/$/, ''),
      type,
      mode: oct(h, 100, 8) & 0o7777,
      uid: oct(h, 108, 8),
      gid: oct(h, 116, 8),
      size: Number(pax.size ?? size),
      link: pax.linkpath ?? str(h, 157, 100),
      xattrs,
    };
    out.set(entry.path, { entry, data });
    pax = {};
    longName = undefined;
  }
  return out;
}

// "<len> <key>=<value>\n" records; values are bytes (xattrs are binary).
function parsePax(data: Buffer): Record<string, string> {
  const rec: Record<string, string> = {};
  for (let at = 0; at < data.length;) {
    const space = data.indexOf(0x20, at);
    const len = parseInt(data.subarray(at, space).toString('latin1'), 10);
    const kv = data.subarray(space + 1, at + len - 1).toString('latin1');
    const eq = kv.indexOf('=');
    rec[kv.slice(0, eq)] = kv.slice(eq + 1);
    at += len;
  }
  return rec;
}

/** An archive's top-level image index: each image's platform and config digest. */
export function readOciIndex(file: string): { platform: string; config: string }[] {
  const archive = readTar(readFileSync(file));
  const blob = (digest: string) => JSON.parse(archive.get(`blobs/sha256/${digest.replace(/^sha256:/, '')}`)!.data.toString());
  const top = JSON.parse(archive.get('index.json')!.data.toString()).manifests[0];
  if (top.mediaType !== 'application/vnd.oci.image.index.v1+json') throw new Error(`${file}: ${top.mediaType} is not an image index`);
  return blob(top.digest).manifests.map((m: { digest: string; platform: { os: string; architecture: string } }) => ({
    platform: `${m.platform.os}/${m.platform.architecture}`,
    config: blob(m.digest).config.digest,
  }));
}

/** The config digest of an archive's single image. */
export function configDigest(file: string): string {
  const archive = readTar(readFileSync(file));
  const top = JSON.parse(archive.get('index.json')!.data.toString()).manifests[0];
  return JSON.parse(archive.get(`blobs/sha256/${top.digest.replace(/^sha256:/, '')}`)!.data.toString()).config.digest;
}

export function readOciArchive(file: string): OciImage {
  const archive = readTar(readFileSync(file));
  const blob = (digest: string) => {
    const b = archive.get(`blobs/sha256/${digest.replace(/^sha256:/, '')}`);
    if (!b) throw new Error(`${file}: blob ${digest} is missing`);
    return b.data;
  };
  const index = JSON.parse(archive.get('index.json')!.data.toString());
  const manifest = JSON.parse(blob(index.manifests[0].digest).toString());
  const config = JSON.parse(blob(manifest.config.digest).toString());
  const entries: Entry[] = [];
  let layerBytes = 0;
  for (const layer of manifest.layers) {
    const raw = blob(layer.digest);
    layerBytes += raw.length;
    const tar = raw[0] === 0x1f && raw[1] === 0x8b ? gunzipSync(raw) : raw;
    for (const { entry } of readTar(tar).values()) entries.push(entry);
  }
  return { config: config.config ?? {}, architecture: config.architecture, entries, layerBytes };
}
