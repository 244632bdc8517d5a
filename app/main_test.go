package app

import (
	"testing"

	"github.com/timguard/timguard/internal/redistest"
)

func TestMain(m *testing.M) { redistest.Main(m) }
