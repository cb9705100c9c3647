/**
 * Tiny static x86-64 ELF programs assembled by hand, so images need no compiler on the host.
 *
 *   euidProgram() -> Buffer   prints "Effective uid: <geteuid()>\n" in one write(2), exits 0.
 *
 * It stands in for Kubernetes' nonewprivs test binary: installed setuid root and run as uid 1000,
 * it prints 0 unless no_new_privs stopped the kernel from honouring the setuid bit at execve.
 * A real ELF (not a script) is needed because the kernel ignores setuid on interpreted files.
 */

const BASE = 0x400000;
const EHDR = 64;
const PHDR = 56;

function code(prefixEnd: number): Buffer {
  const imm32 = (v: number): number[] => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
  return Buffer.from([
    0xb8, 0x6b, 0x00, 0x00, 0x00, //       mov eax, 107 (geteuid)
    0x0f, 0x05, //                         syscall
    0x48, 0x8d, 0x74, 0x24, 0xff, //       lea rsi, [rsp-1]   (message is built below the stack pointer)
    0xc6, 0x06, 0x0a, //                   mov byte [rsi], '\n'
    0xb9, 0x0a, 0x00, 0x00, 0x00, //       mov ecx, 10
    0x31, 0xd2, //                 digits: xor edx, edx
    0xf7, 0xf1, //                         div ecx
    0x80, 0xc2, 0x30, //                   add dl, '0'
    0x48, 0xff, 0xce, //                   dec rsi
    0x88, 0x16, //                         mov [rsi], dl
    0x85, 0xc0, //                         test eax, eax
    0x75, 0xf0, //                         jnz digits
    0xbb, ...imm32(prefixEnd), //          mov ebx, prefix_end
    0xb9, 0x0f, 0x00, 0x00, 0x00, //       mov ecx, 15
    0x48, 0xff, 0xcb, //           prefix: dec rbx
    0x48, 0xff, 0xce, //                   dec rsi
    0x8a, 0x03, //                         mov al, [rbx]
    0x88, 0x06, //                         mov [rsi], al
    0xff, 0xc9, //                         dec ecx
    0x75, 0xf2, //                         jnz prefix
    0x48, 0x89, 0xe2, //                   mov rdx, rsp
    0x48, 0x29, 0xf2, //                   sub rdx, rsi       (length)
    0xbf, 0x01, 0x00, 0x00, 0x00, //       mov edi, 1
    0xb8, 0x01, 0x00, 0x00, 0x00, //       mov eax, 1 (write)
    0x0f, 0x05, //                         syscall
    0x31, 0xff, //                         xor edi, edi
    0xb8, 0x3c, 0x00, 0x00, 0x00, //       mov eax, 60 (exit)
    0x0f, 0x05, //                         syscall
  ]);
}

export function euidProgram(): Buffer {
  const prefix = Buffer.from('Effective uid: ', 'ascii');
  const codeLen = code(0).length;
  const codeStart = EHDR + PHDR;
  const prefixEnd = BASE + codeStart + codeLen + prefix.length;
  const body = Buffer.concat([code(prefixEnd), prefix]);
  const total = codeStart + body.length;

  const ehdr = Buffer.alloc(EHDR);
  Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]).copy(ehdr, 0); // ELF64, little endian, SysV
  ehdr.writeUInt16LE(2, 16); // ET_EXEC
  ehdr.writeUInt16LE(0x3e, 18); // x86-64
  ehdr.writeUInt32LE(1, 20);
  ehdr.writeBigUInt64LE(BigInt(BASE + codeStart), 24); // entry
  ehdr.writeBigUInt64LE(BigInt(EHDR), 32); // phoff
  ehdr.writeUInt16LE(EHDR, 52);
  ehdr.writeUInt16LE(PHDR, 54);
  ehdr.writeUInt16LE(1, 56);

  const phdr = Buffer.alloc(PHDR);
  phdr.writeUInt32LE(1, 0); // PT_LOAD
  phdr.writeUInt32LE(5, 4); // R+X
  phdr.writeBigUInt64LE(0n, 8);
  phdr.writeBigUInt64LE(BigInt(BASE), 16);
  phdr.writeBigUInt64LE(BigInt(BASE), 24);
  phdr.writeBigUInt64LE(BigInt(total), 32);
  phdr.writeBigUInt64LE(BigInt(total), 40);
  phdr.writeBigUInt64LE(0x1000n, 48);

  return Buffer.concat([ehdr, phdr, body]);
}
