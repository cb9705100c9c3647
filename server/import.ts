/** `corral import FILE...`: loads image archives into the store without a registry (air-gapped nodes). */
import type { Config } from '../runtime/config.js';
import { UnimplementedError } from '../runtime/errors.js';

export async function runImport(_config: Config, _files: string[], _out: NodeJS.WritableStream): Promise<number> {
  throw new UnimplementedError('corral import is not available yet');
}
