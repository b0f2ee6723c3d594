package rlsearch

import (
	"context"
	"math"
	"slices"
	"strings"
	"testing"
)

// learnEpisodes is the episode count of TestAgentBeatsRandom: 100, a third
// of the default, keeps the test to seconds; the agent's advantage is
// already well over learnMargin there (below).
const learnEpisodes = 100

// learnMargin is how much closer to the ILP optimum the agent alone must
// come than random actions on every table: its worst gap over the seeds at
// most 1/learnMargin of random actions' best gap. Chance does not give
// this: random actions' own best gaps differ by at most 6.2x between seeds
// on these tables (100 episodes, seeds 7, 14, 21: 144% to 4,960% above the
// optimum), while the agent's worst gap was 71x to over 800x below random's
// best (seeds 7 and 14: agent 0% to 21%, random 261% to 2,658%; measured
// when this test was written).
const learnMargin = 10

// TestAgentBeatsRandom: the DDPG agent alone (no polish) against uniform
// random actions with the same episode count, the same repair and the same
// seeds (Config.Warmup = Episodes makes every episode a random one), on
// the random bench tables. The acceptance test TestSearchMatchesILP judges
// the result after the polish, which random actions plus the polish also
// pass; this one judges what the agent learned.
//
// The LeNet table is left out: it has three free layers, so random actions
// visit most of its configurations within 100 episodes and reach the
// agent's result (gaps 0.4% to 1.0% for both); no margin can exist there.
//
// It also logs the best constant action (every decision at the same action,
// then the same repair; 0 to 1 in steps of 0.05), the strongest policy
// that learns nothing: how much of the agent's advantage is the repair's.
func TestAgentBeatsRandom(t *testing.T) {
	seeds := []uint64{7, 14}
	var agentGaps, constGaps []float64
	for _, bt := range benchTables() {
		if strings.HasPrefix(bt.name, "lenet") {
			continue
		}
		opt := optimum(t, bt.p).Objective
		gap := func(o float64) float64 { return o/opt - 1 }
		agentWorst, randomBest := 0.0, math.Inf(1)
		for _, s := range seeds {
			a, err := Search(context.Background(), bt.p, Config{Episodes: learnEpisodes, Seed: s, NoPolish: true})
			if err != nil {
				t.Fatalf("%s: %v", bt.name, err)
			}
			r, err := Search(context.Background(), bt.p, Config{Episodes: learnEpisodes, Warmup: learnEpisodes, Seed: s, NoPolish: true})
			if err != nil {
				t.Fatalf("%s: %v", bt.name, err)
			}
			if a.Polished || r.Polished || a.Objective != a.AgentObjective {
				t.Fatalf("%s: a polish ran with NoPolish", bt.name)
			}
			agentWorst = max(agentWorst, gap(a.AgentObjective))
			randomBest = min(randomBest, gap(r.AgentObjective))
		}
		c := bestConstant(t, bt.p)
		t.Logf("%-16s gap to the ILP optimum: agent worst %6.2f%%, random best %8.2f%%, best constant action %6.2f%%", bt.name, 100*agentWorst, 100*randomBest, 100*gap(c))
		if agentWorst*learnMargin > randomBest {
			t.Errorf("%s: agent alone %.4g above the optimum, random actions %.4g; want the agent's gap at most 1/%d of random's", bt.name, agentWorst, randomBest, learnMargin)
		}
		agentGaps = append(agentGaps, agentWorst)
		constGaps = append(constGaps, gap(c))
	}
	slices.Sort(agentGaps)
	slices.Sort(constGaps)
	t.Logf("median gap: agent worst %.2f%%, best constant action %.2f%%", 100*agentGaps[len(agentGaps)/2], 100*constGaps[len(constGaps)/2])
}

// bestConstant is the least objective over constant actions a (every free
// decision at level(a)), repaired as Search repairs its episodes.
func bestConstant(t *testing.T, p *Problem) float64 {
	t.Helper()
	e, err := compile(p)
	if err != nil {
		t.Fatal(err)
	}
	best := math.Inf(1)
	cost := make([]float64, e.nr)
	for i := 0; i <= 20; i++ {
		x := make([]int, len(e.groups)) // fixed groups stay at their only level
		for gi := range e.groups {
			if !e.groups[gi].fixed {
				x[gi] = level(float64(i)/20, len(e.groups[gi].bits))
			}
		}
		if e.repair(x, cost) != nil {
			continue
		}
		o, _ := p.objective(e.bits(x, nil))
		best = min(best, o)
	}
	return best
}
