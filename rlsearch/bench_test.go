package rlsearch

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"
)

// BenchmarkEpisodes60 measures episodes per second of Search with the table
// reward and the default configuration on a 60-layer table with two
// budgets (the goal: at least 1000). The polish is off so that
// only episodes are timed.
func BenchmarkEpisodes60(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 60))
	p := randomTable(rng, tableOpts{layers: 60, nbud: 2})
	const episodes = 300
	for b.Loop() {
		if _, err := Search(context.Background(), p, Config{Episodes: episodes, Seed: 1, NoPolish: true}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(episodes*b.N)/b.Elapsed().Seconds(), "episodes/s")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkTimeTo5Percent measures, over the bench tables (random 20/40/60
// layers and LeNet, several seeds), how many episodes and how much time
// the search needs before its best configuration is within 5% of the ILP
// optimum: for the agent alone (tables it does not reach in 300 episodes
// count as 300 and are reported as misses) and with the polish applied to
// its best after every episode. Times exclude the polish calls made for
// the measurement, except in the polished figure.
func BenchmarkTimeTo5Percent(b *testing.B) {
	const within5, maxEpisodes = 0.05, 300
	tables := benchTables()
	opts := make([]float64, len(tables))
	for i, bt := range tables {
		opts[i] = optimum(b, bt.p).Objective
	}
	var agentEps, polEps, misses int
	var agentTime, polTime time.Duration
	for b.Loop() {
		agentEps, polEps, misses, agentTime, polTime = 0, 0, 0, 0, 0
		for i, bt := range tables {
			opt := opts[i]
			// Agent alone.
			ctx, cancel := context.WithCancel(context.Background())
			hit := maxEpisodes
			start := time.Now()
			_, err := Search(ctx, bt.p, Config{Episodes: maxEpisodes, Seed: bt.seed, NoPolish: true, Progress: func(pr Progress) {
				if pr.Best <= (1+within5)*opt && hit == maxEpisodes {
					hit = pr.Episode
					cancel()
				}
			}})
			agentTime += time.Since(start)
			cancel()
			if err != nil {
				b.Fatal(err)
			}
			if hit == maxEpisodes {
				misses++
			}
			agentEps += hit
			// Agent plus polish of its best after each episode.
			ctx, cancel = context.WithCancel(context.Background())
			hit = maxEpisodes
			start = time.Now()
			_, err = Search(ctx, bt.p, Config{Episodes: maxEpisodes, Seed: bt.seed, NoPolish: true, Progress: func(pr Progress) {
				pol, err := Improve(bt.p, pr.BestBits)
				if err != nil {
					b.Fatal(err)
				}
				if o, _ := bt.p.objective(pol); o <= (1+within5)*opt && hit == maxEpisodes {
					hit = pr.Episode
					cancel()
				}
			}})
			polTime += time.Since(start)
			cancel()
			if err != nil {
				b.Fatal(err)
			}
			polEps += hit
		}
	}
	n := float64(len(tables))
	b.ReportMetric(float64(agentEps)/n, "agent-episodes/table")
	b.ReportMetric(float64(agentTime.Milliseconds())/n, "agent-ms/table")
	b.ReportMetric(float64(misses), "agent-misses")
	b.ReportMetric(float64(polEps)/n, "polished-episodes/table")
	b.ReportMetric(float64(polTime.Microseconds())/1000/n, "polished-ms/table")
	b.ReportMetric(0, "ns/op")
}
