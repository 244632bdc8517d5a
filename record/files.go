package record

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// File names: one file per hour (UTC) of arrival,
// callbacks-YYYYMMDDTHH.jsonl, so names sort in time order.
const (
	filePrefix = "callbacks-"
	fileSuffix = ".jsonl"
	hourLayout = "20060102T15"
)

// FileName is the name of the file that holds the callbacks that arrived
// in t's hour.
func FileName(t time.Time) string {
	return filePrefix + t.UTC().Format(hourLayout) + fileSuffix
}

// HourOf returns the hour a recording file's name stands for.
func HourOf(name string) (time.Time, bool) {
	base := filepath.Base(name)
	if !strings.HasPrefix(base, filePrefix) || !strings.HasSuffix(base, fileSuffix) {
		return time.Time{}, false
	}
	t, err := time.Parse(hourLayout, strings.TrimSuffix(strings.TrimPrefix(base, filePrefix), fileSuffix))
	if err != nil {
		return time.Time{}, false
	}
	return t, true
}

// Files lists the recording files in dir, oldest first. With a non-zero
// since, files whose hour ended before since are left out.
func Files(dir string, since time.Time) ([]string, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("recordings: %w", err)
	}
	var out []string
	for _, de := range des {
		if de.IsDir() {
			continue
		}
		h, ok := HourOf(de.Name())
		if !ok {
			continue
		}
		if !since.IsZero() && h.Add(time.Hour).Before(since) {
			continue
		}
		out = append(out, filepath.Join(dir, de.Name()))
	}
	slices.Sort(out)
	return out, nil
}
