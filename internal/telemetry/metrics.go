package telemetry

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// NewRegistry returns a process's registry with the Go runtime and process collectors
// and orgs_build_info{version,revision} 1.
func NewRegistry(version, revision string) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace:   "orgs",
		Name:        "build_info",
		Help:        "The running build: always 1, labelled with its version and revision.",
		ConstLabels: prometheus.Labels{"version": version, "revision": revision},
	})
	buildInfo.Set(1)
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfo,
	)
	return reg
}

// HTTPMetrics are the API's request metrics. route is the matched ServeMux pattern
// ("unmatched" for none), never a raw path, so the label stays bounded.
type HTTPMetrics struct {
	Requests *prometheus.CounterVec   // orgs_http_requests_total{method,route,code}
	Duration *prometheus.HistogramVec // orgs_http_request_duration_seconds{method,route}
}

// NewHTTPMetrics creates the HTTP metrics and registers them with reg.
func NewHTTPMetrics(reg prometheus.Registerer) *HTTPMetrics {
	m := &HTTPMetrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "orgs",
			Subsystem: "http",
			Name:      "requests_total",
			Help:      "HTTP requests served, by method, route pattern and status code.",
		}, []string{"method", "route", "code"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "orgs",
			Subsystem: "http",
			Name:      "request_duration_seconds",
			Help:      "Time to serve an HTTP request, by method and route pattern.",
			Buckets:   []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"method", "route"}),
	}
	reg.MustRegister(m.Requests, m.Duration)
	return m
}
