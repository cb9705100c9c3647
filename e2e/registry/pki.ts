/**
 * Test PKI made with the openssl CLI (Node can sign but not issue X.509 certificates).
 *
 *   const ca = makeCA(dir)                                  // ca.pem / ca.key
 *   const srv = makeServerCert(dir, ca, ['127.0.0.1', 'localhost'])   // server.pem / server.key
 *   const tok = makeTokenSigner(dir)                        // self-signed P-256 cert for JWTs
 *
 * All keys are EC P-256 (fast to generate). Files are written under dir; paths are returned.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { X509Certificate } from 'node:crypto';

export interface CertFiles { certFile: string; keyFile: string }

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

function ecKey(keyFile: string, cwd: string): void {
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', keyFile], cwd);
}

export function makeCA(dir: string, name = 'corral e2e test CA'): CertFiles {
  const keyFile = path.join(dir, 'ca.key');
  const certFile = path.join(dir, 'ca.pem');
  ecKey(keyFile, dir);
  openssl(['req', '-x509', '-new', '-key', keyFile, '-out', certFile, '-days', '2', '-subj', `/CN=${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  return { certFile, keyFile };
}

/** A server certificate for the given IPs / DNS names, signed by ca. */
export function makeServerCert(dir: string, ca: CertFiles, names: string[], base = 'server'): CertFiles {
  const keyFile = path.join(dir, `${base}.key`);
  const certFile = path.join(dir, `${base}.pem`);
  const csr = path.join(dir, `${base}.csr`);
  const ext = path.join(dir, `${base}.ext`);
  ecKey(keyFile, dir);
  openssl(['req', '-new', '-key', keyFile, '-out', csr, '-subj', `/CN=${names[0]}`], dir);
  const san = names.map((n) => (/^[\d.]+$|:/.test(n) ? `IP:${n}` : `DNS:${n}`)).join(',');
  writeFileSync(ext, `subjectAltName=${san}\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\nbasicConstraints=CA:FALSE\n`);
  openssl(['x509', '-req', '-in', csr, '-CA', ca.certFile, '-CAkey', ca.keyFile, '-CAcreateserial', '-out', certFile,
    '-days', '2', '-extfile', ext], dir);
  return { certFile, keyFile };
}

export interface TokenSigner extends CertFiles {
  keyPem: string;
  /** base64 DER of the certificate, for the JWT x5c header. */
  certB64: string;
}

/**
 * The key that signs registry bearer tokens and its self-signed certificate. distribution trusts
 * it through auth.token.rootcertbundle; tokens carry the certificate in x5c so the registry
 * can pick the key by chain verification.
 */
export function makeTokenSigner(dir: string): TokenSigner {
  const keyFile = path.join(dir, 'token.key');
  const certFile = path.join(dir, 'token.pem');
  ecKey(keyFile, dir);
  openssl(['req', '-x509', '-new', '-key', keyFile, '-out', certFile, '-days', '2', '-subj', '/CN=corral e2e token signer'], dir);
  const certPem = readFileSync(certFile, 'utf8');
  return { keyFile, certFile, keyPem: readFileSync(keyFile, 'utf8'), certB64: new X509Certificate(certPem).raw.toString('base64') };
}

/** A client certificate (CN = user, O = groups), signed by ca: Kubernetes' x509 authentication. */
export function makeClientCert(dir: string, ca: CertFiles, user: string, groups: string[], base: string): CertFiles {
  const keyFile = path.join(dir, `${base}.key`);
  const certFile = path.join(dir, `${base}.pem`);
  const csr = path.join(dir, `${base}.csr`);
  const ext = path.join(dir, `${base}.ext`);
  ecKey(keyFile, dir);
  openssl(['req', '-new', '-key', keyFile, '-out', csr, '-subj', `/CN=${user}${groups.map((g) => `/O=${g}`).join('')}`], dir);
  writeFileSync(ext, 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\nbasicConstraints=CA:FALSE\n');
  openssl(['x509', '-req', '-in', csr, '-CA', ca.certFile, '-CAkey', ca.keyFile, '-CAcreateserial', '-out', certFile,
    '-days', '2', '-extfile', ext], dir);
  return { certFile, keyFile };
}
