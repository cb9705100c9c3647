/**
 * `corral import FILE...`: loads OCI image layouts and `docker save` archives into the
 * store without any registry (air-gapped nodes).
 *
 * It works on the store directly, so it refuses while a daemon serves on the configured
 * socket: two processes writing one image index would lose each other's updates. Stop
 * corral, import, start it again (containers keep running meanwhile).
 */
import type { Config } from '../runtime/config.js';
import { FailedPreconditionError } from '../runtime/errors.js';
import { ImageService } from '../runtime/image/service.js';
import { importArchive } from '../runtime/image/import.js';
import { linux } from '../runtime/linux/syscalls.js';
import { createLogger } from '../runtime/util/log.js';
import { socketAnswers } from './daemon.js';

export async function runImport(config: Config, files: string[], out: NodeJS.WritableStream): Promise<number> {
  if (await socketAnswers(config.socket)) {
    throw new FailedPreconditionError(`a daemon is serving on ${config.socket}; stop it before importing (the store has one writer)`);
  }
  const logger = createLogger(config.log_level === 'info' ? 'warn' : config.log_level, config.log_format);
  const images = await ImageService.create({ config, logger, syscalls: linux });
  try {
    for (const file of files) {
      for (const img of await importArchive(images, file)) {
        out.write(`${img.id}${img.tags.length ? ' ' + img.tags.join(' ') : ''}\n`);
      }
    }
  } finally {
    await images.close();
  }
  return 0;
}
