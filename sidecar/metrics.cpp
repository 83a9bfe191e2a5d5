/*
 * sidecar/metrics.cpp
 *
 * The metrics registry and the Prometheus text format (0.0.4): "# HELP", "# TYPE", then one line
 * per sample; histograms as cumulative _bucket{le=...} lines, _sum and _count.
 */
#include "metrics.hpp"

#include "json_log.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace hasura_events::sidecar {

const std::vector<double> kLatencyBuckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
const std::vector<double> kAgeBuckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,  1,   2.5,
										 5,     10,   30,    60,   300, 900,  1800, 3600};

/*
 * format_metric_value prints the shortest decimal that parses back to v, so bucket bounds read
 * 0.005 rather than 0.0050000000000000001, and integers print without an exponent up to 1e15.
 */
std::string
format_metric_value(double v)
{
	if (std::isnan(v))
		return "NaN";
	if (std::isinf(v))
		return v > 0 ? "+Inf" : "-Inf";
	if (v == 0)
		return "0"; /* also -0 */
	char buf[40];
	if (v == std::floor(v) && std::fabs(v) < 1e15) {
		snprintf(buf, sizeof buf, "%.0f", v);
		return buf;
	}
	for (int precision = 1; precision <= 17; precision++) {
		snprintf(buf, sizeof buf, "%.*g", precision, v);
		if (strtod(buf, nullptr) == v)
			break;
	}
	return buf;
}

std::string
escape_label_value(std::string_view s)
{
	std::string out;
	out.reserve(s.size());
	for (size_t i = 0; i < s.size();) {
		char c = s[i];
		if (c == '\\') {
			out += "\\\\";
		} else if (c == '"') {
			out += "\\\"";
		} else if (c == '\n') {
			out += "\\n";
		} else {
			i += append_utf8_or(out, s, i, "\xef\xbf\xbd"); /* U+FFFD */
			continue;
		}
		i++;
	}
	return out;
}

std::string
escape_help(std::string_view s)
{
	std::string out;
	for (char c : s) {
		if (c == '\\')
			out += "\\\\";
		else if (c == '\n')
			out += "\\n";
		else
			out.push_back(c);
	}
	return out;
}

MetricFamily::MetricFamily(std::string name, std::string help, Type type, std::vector<std::string> label_names,
						   std::vector<double> buckets)
	: name_(std::move(name)), help_(std::move(help)), type_(type), label_names_(std::move(label_names)),
	  buckets_(std::move(buckets))
{
}

MetricFamily::Series *
MetricFamily::series_for(const LabelValues &values)
{
	if (values.size() != label_names_.size())
		return nullptr;
	auto it = series_.find(values);
	if (it == series_.end()) {
		it = series_.emplace(values, Series()).first;
		if (type_ == Type::Histogram)
			it->second.bucket_counts.assign(buckets_.size() + 1, 0);
	}
	return &it->second;
}

void
MetricFamily::inc(const LabelValues &values, double delta)
{
	if (Series *s = series_for(values))
		s->value += delta;
}

void
MetricFamily::set(const LabelValues &values, double value)
{
	if (Series *s = series_for(values))
		s->value = value;
}

/*
 * MetricFamily::observe counts the sample in the first bucket whose bound is >= value; render()
 * makes the counts cumulative.
 */
void
MetricFamily::observe(const LabelValues &values, double value)
{
	if (!std::isfinite(value))
		return;
	if (Series *s = series_for(values))
		observe_in(*s, value);
}

void
MetricFamily::observe_in(Series &s, double value) const
{
	if (!std::isfinite(value) || s.bucket_counts.empty())
		return;
	size_t i = 0;
	while (i < buckets_.size() && value > buckets_[i])
		i++;
	s.bucket_counts[i]++;
	s.count++;
	s.sum += value;
}

MetricFamily::Series *
MetricFamily::series(const LabelValues &values)
{
	return series_for(values);
}

void
MetricFamily::remove(const LabelValues &values)
{
	series_.erase(values);
}

void
MetricFamily::remove_where(size_t index, std::string_view value)
{
	for (auto it = series_.begin(); it != series_.end();) {
		if (index < it->first.size() && it->first[index] == value)
			it = series_.erase(it);
		else
			++it;
	}
}

void
MetricFamily::clear()
{
	series_.clear();
}

const MetricFamily::Series *
MetricFamily::find(const LabelValues &values) const
{
	auto it = series_.find(values);
	return it == series_.end() ? nullptr : &it->second;
}

void
MetricFamily::render_labels(std::string &out, const LabelValues &values, const char *le) const
{
	if (values.empty() && !le)
		return;
	out.push_back('{');
	for (size_t i = 0; i < values.size(); i++) {
		if (i > 0)
			out.push_back(',');
		out += label_names_[i] + "=\"" + escape_label_value(values[i]) + "\"";
	}
	if (le) {
		if (!values.empty())
			out.push_back(',');
		out += std::string("le=\"") + le + "\"";
	}
	out.push_back('}');
}

void
MetricFamily::render(std::string &out) const
{
	if (series_.empty())
		return;
	static const char *const kTypeNames[] = {"counter", "gauge", "histogram"};
	out += "# HELP " + name_ + " " + escape_help(help_) + "\n";
	out += "# TYPE " + name_ + " " + kTypeNames[static_cast<int>(type_)] + "\n";
	for (const auto &entry : series_) {
		const LabelValues &values = entry.first;
		const Series &s = entry.second;
		if (type_ != Type::Histogram) {
			out += name_;
			render_labels(out, values, nullptr);
			out += " " + format_metric_value(s.value) + "\n";
			continue;
		}
		uint64_t cumulative = 0;
		for (size_t i = 0; i <= buckets_.size(); i++) {
			cumulative += s.bucket_counts[i];
			std::string le = i < buckets_.size() ? format_metric_value(buckets_[i]) : "+Inf";
			out += name_ + "_bucket";
			render_labels(out, values, le.c_str());
			out += " " + std::to_string(cumulative) + "\n";
		}
		out += name_ + "_sum";
		render_labels(out, values, nullptr);
		out += " " + format_metric_value(s.sum) + "\n";
		out += name_ + "_count";
		render_labels(out, values, nullptr);
		out += " " + std::to_string(s.count) + "\n";
	}
}

MetricFamily &
MetricsRegistry::add(std::string name, std::string help, MetricFamily::Type type, std::vector<std::string> label_names,
					 std::vector<double> buckets)
{
	families_.push_back(std::make_unique<MetricFamily>(std::move(name), std::move(help), type, std::move(label_names),
													   std::move(buckets)));
	return *families_.back();
}

std::string
MetricsRegistry::render() const
{
	std::string out;
	for (const auto &f : families_)
		f->render(out);
	return out;
}

} // namespace hasura_events::sidecar
