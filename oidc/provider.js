// A local OpenID Connect provider for development and tests: oidc-provider with its built-in
// development login (any password; the login is the user id), a public client for the web page
// (authorization code + PKCE) and JWT access tokens for the orders API. Never for production.
//
// Settings (environment):
//   OIDC_PORT (3999), OIDC_HOST (127.0.0.1), OIDC_ISSUER (http://127.0.0.1:<port>)
//   OIDC_REDIRECT_URIS  the page's URLs, comma-separated (http://127.0.0.1:8001/,http://localhost:8001/)
//   OIDC_CLIENT_ID      the page's client id (orders-page)
//   OIDC_USERS          who may sign in, comma-separated (alice,bob,carol); "*" any valid user id
//   OIDC_OPERATORS      users whose tokens may carry orders:read-any (none)
//   OIDC_KEYS_FILE      signing and cookie keys, made on first start and kept so that a restart
//                       does not invalidate tokens (../.cache/oidc/keys.json)
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync, existsSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import Provider from "oidc-provider";

const HERE = dirname(fileURLToPath(import.meta.url));
const USER_ID = /^[A-Za-z0-9._-]{1,64}$/;
const RESOURCE = "urn:orders";
const AUDIENCE = "orders";

const env = process.env;
const port = Number(env.OIDC_PORT ?? 3999);
const host = env.OIDC_HOST ?? "127.0.0.1";
const issuer = env.OIDC_ISSUER ?? `http://127.0.0.1:${port}`;
const list = (text) => text.split(",").map((s) => s.trim()).filter(Boolean);
const redirectUris = list(env.OIDC_REDIRECT_URIS ?? "http://127.0.0.1:8001/,http://localhost:8001/");
const clientId = env.OIDC_CLIENT_ID ?? "orders-page";
const users = list(env.OIDC_USERS ?? "alice,bob,carol");
const operators = new Set(list(env.OIDC_OPERATORS ?? ""));
const keysFile = resolve(env.OIDC_KEYS_FILE ?? resolve(HERE, "..", ".cache", "oidc", "keys.json"));

function knownUser(id) {
  return USER_ID.test(id) && (users.includes("*") || users.includes(id));
}

// Persisted keys: oidc-provider's built-in key is the same in every install (anyone could
// forge with it), and fresh keys per start would invalidate every token on a restart.
function loadKeys() {
  if (existsSync(keysFile)) return JSON.parse(readFileSync(keysFile, "utf8"));
  const ec = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ format: "jwk" });
  const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ format: "jwk" });
  const keys = { jwks: [rsa, ec], cookies: [randomBytes(32).toString("base64url")] };
  mkdirSync(dirname(keysFile), { recursive: true });
  writeFileSync(keysFile, JSON.stringify(keys), { mode: 0o600 });
  return keys;
}

const keys = loadKeys();

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: clientId,
      token_endpoint_auth_method: "none",
      redirect_uris: redirectUris,
      grant_types: ["authorization_code"],
      response_types: ["code"],
    },
  ],
  jwks: { keys: keys.jwks },
  cookies: { keys: keys.cookies },
  claims: { profile: ["name"] },
  async findAccount(ctx, sub) {
    if (!knownUser(sub)) return undefined;
    return { accountId: sub, async claims() { return { sub, name: sub }; } };
  },
  features: {
    devInteractions: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async (ctx, client, oneOf) => oneOf ?? RESOURCE,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (ctx, resourceIndicator) => {
        if (resourceIndicator !== RESOURCE) throw new Error(`unknown resource ${resourceIndicator}`);
        const account = ctx.oidc.account?.accountId ?? ctx.oidc.session?.accountId;
        const scope = operators.has(account)
          ? "orders:read orders:write orders:read-any"
          : "orders:read orders:write";
        return {
          scope,
          audience: AUDIENCE,
          accessTokenFormat: "jwt",
          accessTokenTTL: 900,
          jwt: { sign: { alg: "ES256" } },
        };
      },
    },
  },
  ttl: { AccessToken: 900, AuthorizationCode: 60, Session: 3600, Grant: 3600, Interaction: 600 },
});

const server = provider.listen(port, host, () => {
  console.log(`oidc provider ${issuer} (client ${clientId}, users ${users.join(",")})`);
});

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
