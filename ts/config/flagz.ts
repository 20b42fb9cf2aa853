// The /flagz page (component-base zpages, KEP-4828): a header, then `name=value` for every
// flag, sorted, with the value given on the command line or else the flag's default, in
// pflag's text (durations as Go prints them, lists as [a,b], gates as A=true,B=false).

import { formatGoDuration } from './duration.js';
import { allFlags, type FlagKind, type FlagValue } from './flags.js';

const RULE = '----------------------------';

/** The header upstream prints, for `component`. */
export function flagzHeader(component: string): string {
  return [
    '',
    RULE,
    `title: ${component} flagz`,
    `description: flags enabled in ${component}`,
    'warning: This endpoint is not meant to be machine parseable and is for debugging purposes only.',
    RULE,
    '',
  ].join('\n');
}

function text(kind: FlagKind, value: FlagValue): string {
  switch (kind) {
    case 'duration':
      return formatGoDuration(value as number);
    case 'strings':
      return `[${(value as string[]).join(',')}]`;
    case 'gates':
      return Object.entries(value as Record<string, boolean>).sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => `${k}=${v}`).join(',');
    default:
      return String(value);
  }
}

/** The page's body for the flags given (as parseFlags returns them). */
export function renderFlagz(given: ReadonlyMap<string, FlagValue>, component = 'kproxy'): string {
  const lines = allFlags().map((f) => {
    const value = given.get(f.name);
    // A list flag's default is the empty list; "primary" (nodeport-addresses) is what unset resolves to.
    const fallback = f.kind === 'strings' ? '[]' : f.defaultText;
    return `${f.name}=${value === undefined ? fallback : text(f.kind, value)}`;
  });
  return `${flagzHeader(component)}\n${lines.join('\n')}\n`;
}
