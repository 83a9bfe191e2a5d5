/*
 * sidecar/resolve.hpp
 *
 * Turns a Deliver into what goes on the wire: the webhook URL (a variable name, or a URL with
 * {{VAR}} templates, resolved from the sidecar's environment) and the request header lines.
 * Secrets resolved here are never logged; redact() removes them from error texts.
 */
#pragma once

#include "options.hpp"
#include "protocol.hpp"

#include <string>
#include <vector>

namespace hasura_events::sidecar {

struct Resolution {
	bool ok = false;
	std::string value;
	std::string error; /* never contains a resolved value */
};

/* lookup_env_var refuses HASURA_GRAPHQL_* names and reports unset variables */
Resolution lookup_env_var(const std::string &name, const EnvLookup &env);

/* expand_templates replaces every {{VAR}} (spaces inside the braces allowed) */
Resolution expand_templates(const std::string &text, const EnvLookup &env, std::vector<std::string> *secrets = nullptr);

struct ResolvedRequest {
	bool ok = false;
	std::string url;
	std::vector<std::string> header_lines; /* "Name: value", ready for curl_slist_append */
	std::string error;
	std::vector<std::string> secrets; /* resolved values to scrub from error texts */
};

ResolvedRequest resolve_request(const proto::Deliver &d, const EnvLookup &env, const std::string &user_agent);

/* url_host extracts the host of an absolute URL ("" when there is none) */
std::string url_host(const std::string &url);

/* redact replaces each secret (of 3 bytes or more) in text with "<redacted>" */
std::string redact(std::string text, const std::vector<std::string> &secrets);

} // namespace hasura_events::sidecar
