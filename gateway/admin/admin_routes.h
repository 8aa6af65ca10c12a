// SPDX-License-Identifier: Apache-2.0
// The gateway's admin API under /admin/v1/: tenants (create, list, get, patch) and API keys
// (create: the plaintext is in that one answer only; list: never the key or its hash; revoke).
// Every request needs `Authorization: Bearer <admin key>` (compared in constant time; 401
// otherwise, and always when the admin key is empty). Errors use OpenAI's error shape. The
// KeyStore must outlive the server; handlers call it from the server's I/O threads.
#pragma once

#include <string>

#include "base/http/http_server.h"
#include "gateway/auth/key_store.h"

namespace weft::admin {

// Registers the routes (before `server.Start()`):
//   POST   /admin/v1/tenants          {"id", "name"?, "deployments"?, "quotas"?}  -> tenant
//   GET    /admin/v1/tenants                                              ->
//   {"object":"list","data"} GET    /admin/v1/tenants/{id} -> tenant PATCH  /admin/v1/tenants/{id}
//   {"name"?, "deployments"?, "quotas"?: {...}} -> tenant POST   /admin/v1/keys {"tenant", "name"?,
//   "expires_in"? ("30d") | "expires_at"?,
//                                      "quotas"?}                   -> api_key + "key" (plaintext)
//   GET    /admin/v1/keys[?tenant=T]                                      ->
//   {"object":"list","data"} DELETE /admin/v1/keys/{id} -> api_key (revoked)
// Statuses: 200, 400 (bad body), 401 (admin key), 404 (unknown tenant or key), 409 (tenant exists),
// 503 (store busy), 500.
void RegisterAdminRoutes(http::HttpServer& server, auth::KeyStore& store, std::string admin_key);

}  // namespace weft::admin
