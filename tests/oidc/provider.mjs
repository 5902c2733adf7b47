// The one OpenID Connect provider of SPE's tests: npm's `oidc-provider`, pinned by package.json and
// package-lock.json here and installed by tests/oidc_support.py outside the source tree. Its own
// small login page (no consent page: the clients are first-party) takes a login, any password and
// an optional one-time code: with the account's `otp` the session's amr is ["pwd", "otp"] and its
// acr "urn:spe:mfa", without it ["pwd"] / "urn:spe:pwd".
// Usage: node provider.mjs CONFIG.json
// CONFIG: {"issuer", "port", "modules" (the node_modules holding oidc-provider),
//          "clients": [{client_id, client_secret, redirect_uris, token_endpoint_auth_method?}],
//          "accounts": {login: {otp?, ...any claims: email, groups, name, national_id}}}
// The accounts are read again from CONFIG on every use, so that a test can change a person's claims.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const configPath = process.argv[2];
const cfg = JSON.parse(fs.readFileSync(configPath, 'utf8'));
const { default: Provider } = await import(
  pathToFileURL(path.join(cfg.modules, 'oidc-provider', 'lib', 'index.js')).href);
const accounts = () => JSON.parse(fs.readFileSync(configPath, 'utf8')).accounts;
const SCOPES = ['openid', 'profile', 'email', 'groups', 'national_id', 'offline_access'];

const provider = new Provider(cfg.issuer, {
  clients: cfg.clients.map((c) => ({
    grant_types: ['authorization_code'], response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic', ...c,
  })),
  scopes: SCOPES,
  // acr and amr in every ID token, as Keycloak and Entra ID put them there
  claims: {
    openid: ['sub', 'acr', 'amr', 'auth_time'], profile: ['preferred_username', 'name'], email: ['email'],
    groups: ['groups'], national_id: ['national_id'],
  },
  acrValues: ['urn:spe:pwd', 'urn:spe:mfa'],
  cookies: { keys: [cfg.cookie_key || 'spe-test-only-cookie-key'] },
  features: { devInteractions: { enabled: false } },
  pkce: { required: () => false },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(ctx, id) {
    const account = accounts()[id];
    if (!account) return undefined;
    const { otp, ...claims } = account;
    return { accountId: id, async claims() { return { sub: id, preferred_username: id, ...claims }; } };
  },
  // first-party clients: no consent page, the requested scopes are granted
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    const requested = String(ctx.oidc.params.scope || 'openid').split(' ').filter((s) => SCOPES.includes(s));
    grant.addOIDCScope(requested.join(' '));
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
  if (!/^\/interaction\/[^/?]+/.test(req.url)) return oidc(req, res);
  try {
    const details = await provider.interactionDetails(req, res);
    if (req.method === 'GET') {
      res.setHeader('content-type', 'text/html; charset=utf-8');
      res.end(`<!doctype html><title>Test IdP</title><form method="post" action="/interaction/${details.uid}/login">
        <input name="login"><input name="password" type="password"><input name="otp"><button>Sign in</button></form>`);
      return;
    }
    const form = await readForm(req);
    const login = form.get('login') || '';
    const account = accounts()[login];
    if (!account) { res.statusCode = 403; res.end('unknown user'); return; }
    const mfa = Boolean(account.otp) && form.get('otp') === account.otp;
    await provider.interactionFinished(req, res, {
      login: { accountId: login, amr: mfa ? ['pwd', 'otp'] : ['pwd'], acr: mfa ? 'urn:spe:mfa' : 'urn:spe:pwd' },
    }, { mergeWithLastSubmission: false });
  } catch (err) {
    res.statusCode = 500;
    res.end(String(err));
  }
});
server.listen(cfg.port, '127.0.0.1', () => console.log(`oidc-provider listening on ${cfg.issuer}`));
