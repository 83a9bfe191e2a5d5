/*
 * extension/core/event_json.hpp
 *
 * Writes Hasura's stored `event` object:
 *   {"op": ..., "data": {"old": ..., "new": ...}, "session_variables": ..., "trace_context": ...}
 *
 * Regime-neutral on purpose: header-only templates over a Sink with append(const char *, size_t),
 * no allocation of their own, no exceptions, no objects with destructors. The capture trigger
 * instantiates them with a StringInfo sink inside the backend; the unit tests with a std::string
 * sink. Row JSON is produced by Postgres (row_to_json) and passed in as text.
 */
#pragma once

#include <cstddef>
#include <string_view>

namespace hasura_events {

/* A piece of JSON text; data == nullptr stands for JSON null. */
struct JsonText {
	const char *data = nullptr;
	size_t len = 0;
	static JsonText
	null()
	{
		return {};
	}
	static JsonText
	of(std::string_view s)
	{
		return {s.data(), s.size()};
	}
};

template <typename Sink>
inline void
append_json_raw(Sink &sink, JsonText v)
{
	if (v.data == nullptr)
		sink.append("null", 4);
	else
		sink.append(v.data, v.len);
}

/* Appends s as a JSON string literal (RFC 8259 escaping; bytes >= 0x80 are passed through). */
template <typename Sink>
inline void
append_json_string(Sink &sink, std::string_view s)
{
	static const char hex[] = "0123456789abcdef";
	sink.append("\"", 1);
	size_t run = 0;
	for (size_t i = 0; i < s.size(); i++) {
		unsigned char c = static_cast<unsigned char>(s[i]);
		const char *esc = nullptr;
		char ubuf[6];
		switch (c) {
		case '"': esc = "\\\""; break;
		case '\\': esc = "\\\\"; break;
		case '\n': esc = "\\n"; break;
		case '\r': esc = "\\r"; break;
		case '\t': esc = "\\t"; break;
		case '\b': esc = "\\b"; break;
		case '\f': esc = "\\f"; break;
		default:
			if (c < 0x20) {
				ubuf[0] = '\\';
				ubuf[1] = 'u';
				ubuf[2] = '0';
				ubuf[3] = '0';
				ubuf[4] = hex[c >> 4];
				ubuf[5] = hex[c & 0xf];
			}
		}
		if (esc == nullptr && c >= 0x20) {
			run++;
			continue;
		}
		if (run > 0)
			sink.append(s.data() + i - run, run);
		run = 0;
		if (esc != nullptr)
			sink.append(esc, 2);
		else
			sink.append(ubuf, 6);
	}
	if (run > 0)
		sink.append(s.data() + s.size() - run, run);
	sink.append("\"", 1);
}

/* The event object Hasura stores in event_log.payload. */
template <typename Sink>
inline void
append_event_json(Sink &sink, std::string_view op, JsonText old_row, JsonText new_row, JsonText session_variables,
				  JsonText trace_context)
{
	sink.append("{\"op\": ", 7);
	append_json_string(sink, op);
	sink.append(", \"data\": {\"old\": ", 18);
	append_json_raw(sink, old_row);
	sink.append(", \"new\": ", 9);
	append_json_raw(sink, new_row);
	sink.append("}, \"session_variables\": ", 24);
	append_json_raw(sink, session_variables);
	sink.append(", \"trace_context\": ", 19);
	append_json_raw(sink, trace_context);
	sink.append("}", 1);
}

} // namespace hasura_events
