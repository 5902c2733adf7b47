// A real OpenID Connect provider for SPE's tests (node-oidc-provider, development interactions:
// any password is accepted for a known login). Usage: node provider.mjs PORT CONFIG.json
// CONFIG: {"clients": [{client_id, client_secret, redirect_uris}], "accounts": {login: {claims...}}}
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const port = Number(process.argv[2]);
const config = JSON.parse(readFileSync(process.argv[3], 'utf8'));
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: config.clients.map((c) => ({
    grant_types: ['authorization_code'], response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic', ...c,
  })),
  claims: {
    openid: ['sub'], profile: ['preferred_username', 'name'], email: ['email'], groups: ['groups'],
    national_id: ['national_id'],
  },
  scopes: ['openid', 'profile', 'email', 'groups', 'national_id', 'offline_access'],
  async findAccount(ctx, id) {
    const account = config.accounts[id];
    if (!account) return undefined;
    return { accountId: id, async claims() { return { sub: id, preferred_username: id, ...account }; } };
  },
  features: { devInteractions: { enabled: true } },
  pkce: { required: () => false },
  cookies: { keys: [config.cookie_key || 'spe-test-only-cookie-key'] },
});
provider.listen(port, '127.0.0.1', () => { console.log(`oidc-provider listening on ${issuer}`); });
