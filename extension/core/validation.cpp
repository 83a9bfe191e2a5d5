/*
 * extension/core/validation.cpp
 *
 * Validators for pg_create_event_trigger arguments (see validation.hpp).
 */
#include "validation.hpp"

#include <cctype>

#include "cpp_only.hpp"

namespace hasura_events {

namespace {

bool
is_alpha(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

bool
is_env_start(char c)
{
	return is_alpha(c) || c == '_';
}

bool
is_env_char(char c)
{
	return is_env_start(c) || is_digit(c);
}

/* RFC 9110 tchar */
bool
is_token_char(char c)
{
	if (is_alpha(c) || is_digit(c))
		return true;
	switch (c) {
	case '!':
	case '#':
	case '$':
	case '%':
	case '&':
	case '\'':
	case '*':
	case '+':
	case '-':
	case '.':
	case '^':
	case '_':
	case '`':
	case '|':
	case '~': return true;
	default: return false;
	}
}

bool
iequals(std::string_view a, std::string_view b)
{
	if (a.size() != b.size())
		return false;
	for (size_t i = 0; i < a.size(); i++)
		if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
			return false;
	return true;
}

bool
starts_with(std::string_view s, std::string_view prefix)
{
	return s.substr(0, prefix.size()) == prefix;
}

} // namespace

namespace {

/* trigger_name_pattern_problem: what breaks ^[A-Za-z]+[A-Za-z0-9_\-]*$, or nothing */
std::string
trigger_name_pattern_problem(std::string_view name)
{
	if (name.empty())
		return "the trigger name is empty";
	if (!is_alpha(name[0]))
		return "the trigger name must start with a letter (A-Z or a-z)";
	for (char c : name)
		if (!is_alpha(c) && !is_digit(c) && c != '_' && c != '-')
			return "the trigger name may contain only letters, digits, \"_\" and \"-\"";
	return {};
}

} // namespace

std::string
trigger_name_problem(std::string_view name)
{
	/* Hasura checks the pattern before the length */
	std::string problem = trigger_name_pattern_problem(name);
	if (!problem.empty())
		return problem;
	if (name.size() > kMaxTriggerNameLength)
		return "the trigger name is " + std::to_string(name.size()) + " characters long; at most " +
			   std::to_string(kMaxTriggerNameLength) + " are allowed";
	return {};
}

std::string
trigger_name_hasura_error(std::string_view name)
{
	if (!trigger_name_pattern_problem(name).empty())
		return "only alphanumeric and underscore and hyphens allowed for name";
	if (name.size() > kMaxTriggerNameLength)
		return "event trigger name can be at most " + std::to_string(kMaxTriggerNameLength) + " characters";
	return {};
}

std::string
env_name_problem(std::string_view name)
{
	if (name.empty())
		return "the environment variable name is empty";
	if (!is_env_start(name[0]))
		return "environment variable name \"" + std::string(name) + "\" must start with a letter or \"_\"";
	for (char c : name)
		if (!is_env_char(c))
			return "environment variable name \"" + std::string(name) + "\" may contain only letters, digits and \"_\"";
	if (starts_with(name, "HASURA_GRAPHQL_"))
		return "environment variable \"" + std::string(name) +
			   "\" is reserved: HASURA_GRAPHQL_* variables may not be read by event triggers";
	return {};
}

std::string
webhook_problem(std::string_view url)
{
	if (url.empty())
		return "the webhook URL is empty";
	if (url.size() > kMaxWebhookLength)
		return "the webhook URL is " + std::to_string(url.size()) + " bytes long; at most " +
			   std::to_string(kMaxWebhookLength) + " are allowed";
	for (char c : url)
		if (c == '\0' || c == '\r' || c == '\n' || c == ' ' || c == '\t')
			return "the webhook URL contains whitespace or a control character";

	/* every {{ must close with }} around a valid variable name */
	for (size_t pos = url.find("{{"); pos != std::string_view::npos; pos = url.find("{{", pos)) {
		size_t end = url.find("}}", pos + 2);
		if (end == std::string_view::npos)
			return "the webhook URL has a \"{{\" template that is not closed with \"}}\"";
		std::string_view var = url.substr(pos + 2, end - pos - 2);
		std::string problem = env_name_problem(var);
		if (!problem.empty())
			return "in the webhook URL template: " + problem;
		pos = end + 2;
	}
	if (url.find("}}") != std::string_view::npos && url.find("{{") == std::string_view::npos)
		return "the webhook URL has a \"}}\" without an opening \"{{\"";

	if (starts_with(url, "{{"))
		return {}; /* the scheme comes from the environment; checked at delivery */
	auto scheme_end = url.find("://");
	if (scheme_end == std::string_view::npos)
		return "the webhook URL must start with http:// or https:// (or with a {{VAR}} template)";
	std::string_view scheme = url.substr(0, scheme_end);
	if (!iequals(scheme, "http") && !iequals(scheme, "https"))
		return "the webhook URL scheme \"" + std::string(scheme) + "\" is not supported; use http or https";
	if (url.size() == scheme_end + 3)
		return "the webhook URL has no host";
	return {};
}

std::string
header_name_problem(std::string_view name)
{
	if (name.empty())
		return "a header name is empty";
	for (char c : name)
		if (!is_token_char(c))
			return "header name \"" + std::string(name) + "\" contains a character not allowed in HTTP header names";
	if (iequals(name, "content-length") || iequals(name, "host") || iequals(name, "transfer-encoding"))
		return "header \"" + std::string(name) + "\" is set by the HTTP client and may not be configured";
	return {};
}

std::string
header_value_problem(std::string_view value)
{
	if (value.size() > kMaxHeaderValueLength)
		return "a header value is " + std::to_string(value.size()) + " bytes long; at most " +
			   std::to_string(kMaxHeaderValueLength) + " are allowed";
	for (char c : value)
		if (c == '\r' || c == '\n' || c == '\0')
			return "a header value contains a line break or NUL character";
	return {};
}

} // namespace hasura_events
