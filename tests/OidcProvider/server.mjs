// A certified OpenID Connect / OAuth 2.0 server (panva's oidc-provider) for Mistral.Auth's integration tests.
// Listens on 127.0.0.1 (PORT, or a free port), prints one JSON line {"issuer": ...} when ready, and serves:
//   - the provider itself: discovery, dynamic client registration (RFC 7591), the token endpoint with every client
//     authentication method, resource indicators (RFC 8707), refresh token rotation with reuse detection, introspection;
//   - POST /test/grants {client_id, scope, resource}: what a user's consent would produce, a grant and its refresh
//     token, so the refresh_token grant can be tested without a browser. Test-only; nothing else is added.
import http from 'node:http';
import Provider, { errors } from 'oidc-provider';

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
  if (req.method === 'POST' && req.url === '/test/grants') {
    try {
      const body = JSON.parse(await new Promise((resolve) => {
        let data = '';
        req.on('data', (chunk) => { data += chunk; });
        req.on('end', () => resolve(data));
      }));
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

async function mintRefreshToken({ client_id: clientId, scope, resource }) {
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
  });
  return refreshToken.save();
}

console.log(JSON.stringify({ issuer }));
