// A real OpenID Connect provider for the OIDC login tests: npm's `oidc-provider` (installed by
// tests/integration/oidc/idp.py into a cache directory outside the repository), with a minimal
// login page of its own: a user name and an optional one-time code. With the right code the
// session's `amr` is ["pwd", "otp"] and its `acr` "urn:spe:mfa"; without it ["pwd"] / "urn:spe:pwd".
// Usage: node idp.mjs CONFIG.json (issuer, port, modules, client_id, client_secret, redirect_uri, users).
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const cfg = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const { default: Provider } = await import(
  pathToFileURL(path.join(cfg.modules, 'oidc-provider', 'lib', 'index.js')).href);
// name -> {email, groups, otp}; read again on every use so that a test can change a person's groups
const users = () => JSON.parse(fs.readFileSync(process.argv[2], 'utf8')).users;

const provider = new Provider(cfg.issuer, {
  clients: [{
    client_id: cfg.client_id, client_secret: cfg.client_secret, redirect_uris: [cfg.redirect_uri],
    grant_types: ['authorization_code'], response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_post',
  }],
  scopes: ['openid', 'profile', 'email', 'groups'],
  // acr and amr in every ID token, as Keycloak and Entra ID put them there
  claims: { openid: ['sub', 'acr', 'amr', 'auth_time'], profile: ['preferred_username'], email: ['email'], groups: ['groups'] },
  acrValues: ['urn:spe:pwd', 'urn:spe:mfa'],
  cookies: { keys: ['spe-test-cookie-key'] },
  features: { devInteractions: { enabled: false } },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(ctx, id) {
    const u = users()[id];
    if (!u) return undefined;
    return {
      accountId: id,
      async claims() { return { sub: id, preferred_username: id, email: u.email, groups: u.groups }; },
    };
  },
  // first-party client: no consent screen
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope('openid profile email groups');
    await grant.save();
    return grant;
  },
});

const oidc = provider.callback();

function readForm(req) {
  return new Promise((resolve) => {
    let body = '';
    req.on('data', (chunk) => { body += chunk; });
    req.on('end', () => resolve(new URLSearchParams(body)));
  });
}

const server = http.createServer(async (req, res) => {
  const m = req.url.match(/^\/interaction\/([^/?]+)(\/login)?/);
  if (!m) return oidc(req, res);
  try {
    const details = await provider.interactionDetails(req, res);
    if (req.method === 'GET') {
      res.setHeader('content-type', 'text/html; charset=utf-8');
      res.end(`<!doctype html><title>Test IdP</title><form method="post" action="/interaction/${details.uid}/login">
        <input name="login"><input name="otp"><button>Sign in</button></form>`);
      return;
    }
    const form = await readForm(req);
    const login = form.get('login') || '';
    const u = users()[login];
    if (!u) { res.statusCode = 403; res.end('unknown user'); return; }
    const mfa = Boolean(u.otp) && form.get('otp') === u.otp;
    await provider.interactionFinished(req, res, {
      login: { accountId: login, amr: mfa ? ['pwd', 'otp'] : ['pwd'], acr: mfa ? 'urn:spe:mfa' : 'urn:spe:pwd' },
    }, { mergeWithLastSubmission: false });
  } catch (err) {
    res.statusCode = 500;
    res.end(String(err));
  }
});
server.listen(cfg.port, '127.0.0.1', () => console.log(`idp listening on ${cfg.issuer}`));
