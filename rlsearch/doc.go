// Package rlsearch chooses one bit width per layer with a HAQ-style
// reinforcement-learning agent (Wang et al., "HAQ: Hardware-Aware Automated
// Quantization with Mixed Precision", CVPR 2019): DDPG on Gonum, float64,
// deterministic for a seed. It sees only tables of numbers (and, for the
// accuracy reward, a callback), never a network: the same problem as
// package ilp, which gives the exact optimum of the table objective.
//
// # Problem
//
// Each Layer has its LayerFeatures, its allowed widths, Omega_i(b) and a
// cost per resource c_{r,i}(b); any subset of the resources has a budget;
// layers may be fixed to one width or tied in groups sharing a width.
// FromILP converts an ilp.Problem.
//
// # Agent
//
// An episode visits the decisions in layer order, one step per layer (a
// tie group decides at its first member; fixed layers take their width).
// The state is the layer's op kind (one-hot), in/out channels, kernel,
// stride, params, MACs and input size (log-scaled, min-max normalised), its
// index over the number of layers, the previous action, its Omega per
// width (log-scaled, normalised) and its cost per width for every budgeted
// resource (above its least cost, in units of the average per-layer cost
// range), and per budgeted resource the slack left once the rest is at its
// cheapest. The actor (two ReLU hidden layers, sigmoid output) gives an
// action a in [0,1]; width index floor(a*len) picks from the allowed
// widths, so every width owns an equal share of [0,1]. The critic Q(s, a)
// has the same shape with a linear output. Both have target copies moved by
// soft updates (Tau), are trained by Adam on minibatches drawn uniformly
// from a ring replay buffer, Updates times after each episode, with the
// undiscounted TD target r + Q'(s', mu'(s')).
//
// Exploration: Warmup episodes of uniform random actions, then the actor's
// action plus truncated normal noise on [0,1] with standard deviation
// Sigma, decaying by SigmaDecay per episode.
//
// After each episode the configuration is repaired into the budgets
// (Repair: while a budget is exceeded, lower the layer whose downgrade
// costs the least Omega per unit of cost saved, normalised by the excess of
// each exceeded budget) and that repaired configuration is evaluated,
// rewarded and kept as the best if it is. Transitions store the states the
// agent saw and the actions it took, as HAQ does.
//
// # Rewards
//
// RewardTable is shaped: step t earns -(Omega_t(b_t) - min_b Omega_t(b)) /
// N for the repaired width b_t, so an episode's return is minus the
// objective up to a constant, and each action is credited with its own
// layer's term instead of one end-of-episode number shared by 60 steps.
// N is the excess objective of the reference configuration (every layer at
// its highest width, repaired), so the reference scores -1; each step's
// penalty is capped at 1, which bounds the critic's targets when a random
// action puts a sensitive layer at 2 bits (Omega spans orders of
// magnitude). RewardAccuracy gives (accuracy - baseline) * AccuracyScale at
// the last step, the baseline being the accuracy of the reference
// configuration; accuracies are cached per configuration.
//
// # Polish
//
// The agent's best configuration is then polished by Improve, a local
// search over the table objective: single-layer and two-layer width
// changes, and moving one layer to any width, repairing the others and
// refilling the slack greedily, until nothing helps. Result reports the
// agent's own best (AgentBits, AgentObjective) beside the polished one.
// The polish does not run with RewardAccuracy, whose objective is measured.
//
// # Invariants
//
// Every configuration Search returns or reports meets every budget within
// FeasibilityTol and respects ties and fixed layers. Objectives and costs
// in a Result are summed in layer order. The same Problem and Config
// (Seed included) give the same Result: one seeded PCG generator drives
// initialisation, exploration and replay sampling, and no map order reaches
// the result. Malformed input gives errors wrapping ErrInvalid; budgets
// that lowering widths cannot meet give errors wrapping ErrInfeasible. The
// package never prints.
package rlsearch
