// The one error type config loading throws. `flag` names what the user must fix:
// a CLI flag ("--proxy-mode"), a config-file field ("nftables.syncPeriod"), or "--config".

export class ConfigError extends Error {
  readonly flag: string;

  constructor(flag: string, message: string) {
    super(message.includes(flag) ? message : `${flag}: ${message}`);
    this.name = 'ConfigError';
    this.flag = flag;
  }
}

export function notImplemented(flag: string, detail?: string): ConfigError {
  const what = flag.startsWith('-') ? `flag ${flag}` : `field ${flag}`;
  return new ConfigError(flag, `${what} is not implemented yet by kproxy${detail ? ` (${detail})` : ''}`);
}
