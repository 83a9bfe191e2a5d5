/*
 * sidecar/resolve.cpp
 *
 * Resolution of webhook URLs and header values from the environment, as Hasura does it:
 * webhook_from_env and value_from_env name a variable; a stored URL may hold {{VAR}} templates.
 * Variables under HASURA_GRAPHQL_ are refused so a trigger definition cannot read the
 * engine's own secrets (admin secret, database URL).
 */
#include "resolve.hpp"

#include <algorithm>
#include <cctype>

namespace hasura_events::sidecar {

namespace {

bool
iequals(const std::string &a, const char *b)
{
	size_t n = a.size();
	for (size_t i = 0; i < n; i++) {
		if (b[i] == '\0' ||
			std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
			return false;
	}
	return b[n] == '\0';
}

/*
 * valid_header_name accepts an RFC 9110 token.
 */
bool
valid_header_name(const std::string &name)
{
	if (name.empty())
		return false;
	for (unsigned char c : name) {
		if (c <= 0x20 || c >= 0x7f || std::string_view("\"(),/:;<=>?@[\\]{}").find(char(c)) != std::string_view::npos)
			return false;
	}
	return true;
}

bool
valid_header_value(const std::string &value)
{
	return value.find_first_of(std::string("\r\n\0", 3)) == std::string::npos;
}

std::string
trim(const std::string &s)
{
	size_t b = s.find_first_not_of(" \t");
	if (b == std::string::npos)
		return std::string();
	size_t e = s.find_last_not_of(" \t");
	return s.substr(b, e - b + 1);
}

Resolution
failure(std::string error)
{
	Resolution r;
	r.error = std::move(error);
	return r;
}

} // namespace

/*
 * lookup_env_var resolves one variable name.
 */
Resolution
lookup_env_var(const std::string &name, const EnvLookup &env)
{
	if (name.empty())
		return failure("empty environment variable name");
	if (name.rfind("HASURA_GRAPHQL_", 0) == 0)
		return failure("environment variable " + name + " may not be used");
	if (name.find('\0') != std::string::npos || name.find('=') != std::string::npos)
		return failure("invalid environment variable name");
	const char *v = env(name.c_str());
	if (v == nullptr)
		return failure("environment variable " + name + " is not set");
	Resolution r;
	r.ok = true;
	r.value = v;
	return r;
}

/*
 * expand_templates replaces {{VAR}} with the variable's value. An unterminated "{{" is kept
 * as text.
 */
Resolution
expand_templates(const std::string &text, const EnvLookup &env, std::vector<std::string> *secrets)
{
	Resolution r;
	size_t pos = 0;
	while (pos < text.size()) {
		size_t open = text.find("{{", pos);
		if (open == std::string::npos)
			break;
		size_t close = text.find("}}", open + 2);
		if (close == std::string::npos)
			break;
		r.value.append(text, pos, open - pos);
		Resolution var = lookup_env_var(trim(text.substr(open + 2, close - open - 2)), env);
		if (!var.ok)
			return var;
		if (secrets)
			secrets->push_back(var.value);
		r.value += var.value;
		pos = close + 2;
	}
	r.value.append(text, pos, std::string::npos);
	r.ok = true;
	return r;
}

std::string
url_host(const std::string &url)
{
	size_t scheme = url.find("://");
	if (scheme == std::string::npos)
		return std::string();
	size_t start = scheme + 3;
	size_t end = url.find_first_of("/?#", start);
	std::string authority = url.substr(start, end == std::string::npos ? std::string::npos : end - start);
	if (size_t at = authority.rfind('@'); at != std::string::npos)
		authority.erase(0, at + 1);
	if (!authority.empty() && authority[0] == '[') {
		size_t rb = authority.find(']');
		return rb == std::string::npos ? authority : authority.substr(0, rb + 1);
	}
	if (size_t colon = authority.find(':'); colon != std::string::npos)
		authority.erase(colon);
	return authority;
}

/*
 * resolve_request builds the URL and the header lines: Content-Type and User-Agent first (a
 * configured header of the same name replaces them), an empty Expect to turn off curl's
 * 100-continue wait, then the configured headers in order.
 */
ResolvedRequest
resolve_request(const proto::Deliver &d, const EnvLookup &env, const std::string &user_agent)
{
	ResolvedRequest r;
	std::vector<std::string> url_secrets;
	Resolution url;
	if (d.webhook_from_env) {
		url = lookup_env_var(d.webhook, env);
		if (url.ok)
			url_secrets.push_back(url.value);
	} else {
		url = expand_templates(d.webhook, env, &url_secrets);
	}
	if (!url.ok) {
		r.error = url.error;
		return r;
	}
	if (trim(url.value).empty()) {
		r.error = "webhook URL is empty";
		return r;
	}
	r.url = url.value;
	if (!url_secrets.empty()) {
		r.secrets = url_secrets;
		r.secrets.push_back(r.url);
		r.secrets.push_back(url_host(r.url));
	}

	bool own_content_type = true, own_user_agent = true;
	for (const proto::Header &h : d.headers) {
		if (iequals(h.name, "Content-Type"))
			own_content_type = false;
		if (iequals(h.name, "User-Agent"))
			own_user_agent = false;
	}
	if (own_content_type)
		r.header_lines.push_back("Content-Type: application/json");
	if (own_user_agent)
		r.header_lines.push_back("User-Agent: " + user_agent);
	r.header_lines.push_back("Expect:");

	for (const proto::Header &h : d.headers) {
		if (!valid_header_name(h.name)) {
			r.error = "invalid header name \"" + h.name + "\"";
			for (char &c : r.error)
				if (static_cast<unsigned char>(c) < 0x20)
					c = '?';
			return r;
		}
		std::string value = h.value;
		if (h.from_env) {
			Resolution v = lookup_env_var(h.value, env);
			if (!v.ok) {
				r.error = v.error;
				return r;
			}
			value = v.value;
			r.secrets.push_back(value);
		}
		if (!valid_header_value(value)) {
			r.error = "value of header " + h.name + " contains a line break or NUL byte";
			return r;
		}
		/* "Name;" is curl's way to send a header with an empty value */
		r.header_lines.push_back(value.empty() ? h.name + ";" : h.name + ": " + value);
	}
	r.ok = true;
	return r;
}

std::string
redact(std::string text, const std::vector<std::string> &secrets)
{
	std::vector<std::string> sorted(secrets);
	/* longest first, so a URL is replaced before the host inside it */
	std::sort(sorted.begin(), sorted.end(),
			  [](const std::string &a, const std::string &b) { return a.size() > b.size(); });
	for (const std::string &s : sorted) {
		if (s.size() < 3)
			continue;
		for (size_t at = text.find(s); at != std::string::npos; at = text.find(s, at + 10))
			text.replace(at, s.size(), "<redacted>");
	}
	return text;
}

} // namespace hasura_events::sidecar
