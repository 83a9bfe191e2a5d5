/*
 * extension/core/validation.hpp
 *
 * Pure checks of the names and strings a pg_create_event_trigger request carries. Each returns
 * an empty string when the value is acceptable, otherwise a sentence that says what is wrong;
 * the SQL API turns that into an error with SQLSTATE 22023.
 */
#pragma once

#include <string>
#include <string_view>

namespace hasura_events {

/* Hasura's rule: ^[A-Za-z]+[A-Za-z0-9_\-]*$, at most 42 characters. */
constexpr size_t kMaxTriggerNameLength = 42;

std::string trigger_name_problem(std::string_view name);

/* Hasura's error message for the same name (test_events.py checks it), or empty when valid. */
std::string trigger_name_hasura_error(std::string_view name);

/* A variable name the sidecar may read: [A-Za-z_][A-Za-z0-9_]*, not HASURA_GRAPHQL_*. */
std::string env_name_problem(std::string_view name);

/* Bounds of a webhook URL and of a header value, in bytes: HTTP servers commonly refuse request
 * lines and header fields beyond 8 KiB, and every event carries its trigger's values. */
constexpr size_t kMaxWebhookLength = 8192;
constexpr size_t kMaxHeaderValueLength = 8192;

/* A webhook as stored: http(s) URL or one starting with a {{VAR}} template; templates well formed;
 * at most kMaxWebhookLength bytes. */
std::string webhook_problem(std::string_view url);

/* An HTTP header name (RFC 9110 token) that is not one the sidecar sets itself. */
std::string header_name_problem(std::string_view name);

/* A header value: no CR, LF or NUL (they would split the request), at most kMaxHeaderValueLength bytes. */
std::string header_value_problem(std::string_view value);

} // namespace hasura_events
