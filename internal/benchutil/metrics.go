package benchutil

import (
	"io"
	"net/http"
	"strconv"
	"strings"
)

// Metrics is one scrape of a Prometheus text endpoint: the value of every
// series, keyed by the series as written (name, then {labels} if any).
type Metrics map[string]float64

// ScrapeMetrics reads http://admin/metrics with client. Comment lines and
// lines without a number are skipped.
func ScrapeMetrics(client *http.Client, admin string) (Metrics, error) {
	resp, err := client.Get("http://" + admin + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	m := Metrics{}
	for line := range strings.SplitSeq(string(b), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i <= 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			m[strings.TrimSpace(line[:i])] = v
		}
	}
	return m, nil
}

// Sum returns the sum of metric name's series over all their label sets,
// and whether there is any.
func (m Metrics) Sum(name string) (sum float64, found bool) {
	for series, v := range m {
		if n, _, _ := strings.Cut(series, "{"); n == name {
			sum, found = sum+v, true
		}
	}
	return sum, found
}
