/*
 * sidecar/metrics.hpp
 *
 * A minimal metrics registry (counters, gauges, histograms with labels) and its rendering in the
 * Prometheus text exposition format, version 0.0.4. Single-threaded: the sidecar's event loop
 * both updates and renders it.
 *
 * Wording: a "family" is one metric name with its HELP, TYPE and label names; a "series" is one
 * combination of label values within a family.
 */
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace hasura_events::sidecar {

using LabelValues = std::vector<std::string>;

/* Histogram bounds (upper, inclusive, ascending; +Inf is implicit) */
extern const std::vector<double> kLatencyBuckets; /* 5 ms .. 10 s: HTTP attempts, claim queries */
extern const std::vector<double> kAgeBuckets;     /* 5 ms .. 1 h: how long events wait */

class MetricFamily {
public:
	enum class Type { Counter, Gauge, Histogram };

	struct Series {
		double value = 0;                    /* counter or gauge */
		std::vector<uint64_t> bucket_counts; /* histogram: per bound, not cumulative; last is +Inf */
		uint64_t count = 0;
		double sum = 0;
	};

	MetricFamily(std::string name, std::string help, Type type, std::vector<std::string> label_names,
				 std::vector<double> buckets = {});

	/* values must have one entry per label name; a mismatch is ignored (programming error) */
	void inc(const LabelValues &values, double delta = 1);
	void set(const LabelValues &values, double value);
	/* observe ignores NaN and infinities, so a bad sample cannot poison the sum */
	void observe(const LabelValues &values, double value);
	void remove(const LabelValues &values);
	/* series: the series of these label values, made if new (nullptr on a label count mismatch).
	 * The pointer stays valid until that series is removed (remove, remove_where, clear): for a
	 * family whose series are never removed, a caller may keep it and spare the lookup (and the
	 * LabelValues it takes) at every update. */
	Series *series(const LabelValues &values);
	/* observe_in: observe() on a series of this family */
	void observe_in(Series &s, double value) const;
	/* remove_where drops every series whose label at index equals value */
	void remove_where(size_t index, std::string_view value);
	void clear();

	const Series *find(const LabelValues &values) const;
	size_t
	size() const
	{
		return series_.size();
	}
	const std::string &
	name() const
	{
		return name_;
	}

	/* render appends HELP, TYPE and every series; a family without series renders nothing */
	void render(std::string &out) const;

private:
	Series *series_for(const LabelValues &values);
	void render_labels(std::string &out, const LabelValues &values, const char *le) const;

	std::string name_, help_;
	Type type_;
	std::vector<std::string> label_names_;
	std::vector<double> buckets_;
	std::map<LabelValues, Series> series_;
};

class MetricsRegistry {
public:
	MetricFamily &add(std::string name, std::string help, MetricFamily::Type type,
					  std::vector<std::string> label_names = {}, std::vector<double> buckets = {});
	/* render returns every family, in registration order */
	std::string render() const;

private:
	std::vector<std::unique_ptr<MetricFamily>> families_;
};

/* format_metric_value: shortest text that reads back as the same double; NaN, +Inf, -Inf */
std::string format_metric_value(double v);

/* escape_label_value: \ " and newline escaped; invalid UTF-8 becomes U+FFFD */
std::string escape_label_value(std::string_view s);

/* escape_help: \ and newline escaped */
std::string escape_help(std::string_view s);

} // namespace hasura_events::sidecar
