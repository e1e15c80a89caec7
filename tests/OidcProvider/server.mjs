// A certified OpenID Connect / OAuth 2.0 server (panva's oidc-provider) for Mistral.Auth's integration tests.
// Listens on 127.0.0.1 (PORT, or a free port), prints one JSON line {"issuer": ...} when ready, and serves:
//   - the provider itself: discovery, dynamic client registration (RFC 7591), the token endpoint with every client
//     authentication method, resource indicators (RFC 8707), refresh token rotation with reuse detection, introspection;
//   - POST /test/grants {client_id, scope, resource, jkt}: what a user's consent would produce, a grant and its
//     refresh token (bound to a DPoP key's thumbprint with jkt), so the refresh_token grant can be tested without a
//     browser;
//   - DPoP (RFC 9449) at the token endpoint, with nonces required (oidc-provider's own implementation), and
//     /api/*: a resource server that accepts only DPoP-bound JWT access tokens and verifies everything RFC 9449 §7
//     asks of one: the proof's signature with its embedded key, typ, htm, htu, a fresh jti, ath, its own nonce, and
//     that the token's cnf.jkt is the proof key's thumbprint;
//   - POST /test/clock {offsetSeconds} moves the server's clock (which rotates oidc-provider's DPoP nonces) and
//     POST /test/api-nonce rotates the API's nonce. Test-only; nothing else is added.
import crypto from 'node:crypto';
import http from 'node:http';
import { calculateJwkThumbprint, createRemoteJWKSet, EmbeddedJWK, jwtVerify } from 'jose';
import Provider, { errors } from 'oidc-provider';

// The server's clock, movable by the tests: oidc-provider derives its DPoP nonces from it.
const realNow = Date.now;
let clockOffsetMs = 0;
Date.now = () => realNow() + clockOffsetMs;

const API = 'https://api.test/';
const server = http.createServer();
await new Promise((resolve) => server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: [],
  findAccount: (ctx, sub) => ({ accountId: sub, claims: () => ({ sub }) }),
  scopes: ['openid', 'offline_access', 'chat:read', 'chat:write'],
  rotateRefreshToken: true,
  ttl: { AccessToken: 300, ClientCredentials: 300, RefreshToken: 3600, Grant: 3600 },
  features: {
    devInteractions: { enabled: false },
    registration: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    clientCredentials: { enabled: true },
    dPoP: { enabled: true, nonceSecret: crypto.randomBytes(32), requireNonce: () => true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => API,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resource) => {
        if (!resource.startsWith(API)) {
          throw new errors.InvalidTarget(`unknown resource ${resource}`);
        }
        return { scope: 'chat:read chat:write', audience: resource, accessTokenFormat: 'jwt', accessTokenTTL: 300 };
      },
    },
  },
});
provider.on('server_error', (ctx, err) => console.error('server_error', err));

const callback = provider.callback();
server.on('request', async (req, res) => {
  if (req.url.startsWith('/api/')) {
    await serveApi(req, res);
    return;
  }
  if (req.method === 'POST' && req.url === '/test/clock') {
    const { offsetSeconds } = JSON.parse(await readBody(req));
    clockOffsetMs = offsetSeconds * 1000;
    res.writeHead(204).end();
    return;
  }
  if (req.method === 'POST' && req.url === '/test/api-nonce') {
    apiNonce = newNonce();
    res.writeHead(204).end();
    return;
  }
  if (req.method === 'POST' && req.url === '/test/grants') {
    try {
      const body = JSON.parse(await readBody(req));
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ refresh_token: await mintRefreshToken(body) }));
    } catch (err) {
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: String(err?.message ?? err) }));
    }
    return;
  }
  callback(req, res);
});

async function mintRefreshToken({ client_id: clientId, scope, resource, jkt }) {
  const client = await provider.Client.find(clientId);
  if (!client) throw new Error(`no client ${clientId}`);
  const accountId = 'user-1';
  const grant = new provider.Grant({ clientId, accountId });
  grant.addOIDCScope('openid offline_access');
  for (const r of [resource ?? API].flat()) {
    grant.addResourceScope(r, scope);
  }
  const grantId = await grant.save();
  const refreshToken = new provider.RefreshToken({
    accountId,
    client,
    grantId,
    gty: 'authorization_code',
    scope: `openid offline_access ${scope}`,
    resource: resource ?? API,
    // What a public client's DPoP-bound authorization_code exchange leaves (RFC 9449 §5): a refresh token bound to its key.
    ...(jkt ? { jkt } : {}),
  });
  return refreshToken.save();
}

function readBody(req) {
  return new Promise((resolve) => {
    let data = '';
    req.on('data', (chunk) => { data += chunk; });
    req.on('end', () => resolve(data));
  });
}

// The resource server: RFC 9449 §7.1, with a nonce of its own (§9) that the tests rotate.
const newNonce = () => crypto.randomBytes(16).toString('base64url');
let apiNonce = newNonce();
const seenJtis = new Set();
const jwks = createRemoteJWKSet(new URL(`${issuer}/jwks`));

async function serveApi(req, res) {
  await readBody(req);
  const refuse = (error, description) => {
    res.writeHead(401, {
      'www-authenticate': `DPoP error="${error}", error_description="${description}", algs="ES256 RS256 PS256"`,
      'dpop-nonce': apiNonce,
      'content-type': 'application/json',
    });
    res.end(JSON.stringify({ error, error_description: description }));
  };
  const authorization = req.headers.authorization ?? '';
  const proof = req.headers.dpop;
  if (!authorization.startsWith('DPoP ')) return refuse('invalid_token', 'a DPoP-bound token must be sent with the DPoP scheme');
  if (typeof proof !== 'string') return refuse('invalid_dpop_proof', 'no DPoP proof');
  const accessToken = authorization.slice(5);
  let payload;
  let jkt;
  try {
    const verified = await jwtVerify(proof, EmbeddedJWK, { typ: 'dpop+jwt', algorithms: ['ES256', 'RS256', 'PS256'] });
    payload = verified.payload;
    jkt = await calculateJwkThumbprint(verified.protectedHeader.jwk);
  } catch (err) {
    return refuse('invalid_dpop_proof', `proof signature or header: ${err.code ?? err.message}`);
  }
  const htu = `${issuer}${req.url.split('?')[0]}`;
  if (payload.htm !== req.method) return refuse('invalid_dpop_proof', 'htm mismatch');
  if (payload.htu !== htu) return refuse('invalid_dpop_proof', `htu mismatch: ${payload.htu} for ${htu}`);
  if (typeof payload.jti !== 'string' || seenJtis.has(payload.jti)) return refuse('invalid_dpop_proof', 'jti missing or replayed');
  if (payload.ath !== crypto.hash('sha256', accessToken, 'base64url')) return refuse('invalid_dpop_proof', 'ath mismatch');
  if (payload.nonce !== apiNonce) return refuse('use_dpop_nonce', 'use the nonce in DPoP-Nonce');
  seenJtis.add(payload.jti);
  let claims;
  try {
    ({ payload: claims } = await jwtVerify(accessToken, jwks, { audience: API, issuer }));
  } catch (err) {
    return refuse('invalid_token', `access token: ${err.code ?? err.message}`);
  }
  if (claims.cnf?.jkt !== jkt) return refuse('invalid_token', 'the token is not bound to the proof key');
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ client_id: claims.client_id, jkt, scope: claims.scope }));
}

console.log(JSON.stringify({ issuer }));
