/** The daemon's logger: winston, text or JSON lines on stderr. */
import winston from 'winston';

export type Logger = winston.Logger;

export function createLogger(level: string, format: 'text' | 'json'): Logger {
  const fmt = format === 'json'
    ? winston.format.combine(winston.format.timestamp(), winston.format.json())
    : winston.format.combine(
        winston.format.timestamp(),
        winston.format.printf(({ timestamp, level: lvl, message, ...rest }) => {
          const extra = Object.keys(rest).length ? ' ' + Object.entries(rest).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' ') : '';
          return `${timestamp} ${lvl} ${message}${extra}`;
        }),
      );
  return winston.createLogger({ level, format: fmt, transports: [new winston.transports.Console({ stderrLevels: ['error', 'warn', 'info', 'debug'] })] });
}

/** A logger that drops everything, for unit tests. */
export function silentLogger(): Logger {
  return winston.createLogger({ silent: true, transports: [new winston.transports.Console()] });
}
