// Package ilp chooses one bit width per layer to minimise the summed
// sensitivity Omega under budgets on latency, size, BOPs or any other
// additive cost: a multiple-choice knapsack problem with several budgets,
// tied layers (same bit width) and fixed layers. It sees only tables of
// numbers, never a network.
//
// Two solvers implement the small Solver interface:
//
//   - BranchAndBound, exact and pure Go: ties merged into one decision,
//     fixed layers turned into constants, dominated options removed; a
//     greedy incumbent (from the Lagrangian choice, else from the
//     lowest-omega options) improved by single moves and pair exchanges;
//     the Lagrangian dual of the budgets (the LP relaxation: exact for one
//     budget by the greedy on convex hulls, by subgradient and exact line
//     searches for several) to fix options by reduced cost; then
//     depth-first search branching on the layer the LP splits between two
//     bit widths. Node bounds are LPs of surrogate budgets (one weighted sum
//     of the budgets, solved greedily on convex hulls) in several
//     directions around the root multipliers, lifted by a few subgradient
//     steps on the node's Lagrangian when they do not prune, unless a
//     view's LP solution meets every budget (it is then the node's exact
//     LP optimum and nothing bounds higher). Every better incumbent the
//     search finds restarts it with tighter reduced-cost fixing. Convex-hull
//     (LP-)dominated options are used only for bounds: they can be
//     optimal in the integer problem, so they are not removed.
//   - LPSolve (cgo only), the 0-1 formulation in lp_solve 5.5 through
//     github.com/draffensperger/golp, given the preprocessed problem and
//     only the columns that reduced-cost fixing against the Go incumbent
//     keeps; Plain mode solves the original formulation as is (ties as
//     equality rows, fixed layers as bounds) and serves as an independent
//     cross-check.
//
// Default returns BranchAndBound (LPSolve is slower on the benchmarks);
// NewSolver("go"|"lp_solve") selects one by name, reporting an unusable
// lp_solve binding as an error wrapping ErrUnavailable (never a panic).
// The end of the caller's context is an interruption: solvers and Pareto
// return an error wrapping ErrInterrupted and no configuration. Only a
// solver's own TimeLimit yields a best-so-far, with its proven Gap.
// Pareto sweeps one budget and returns the non-dominated front.
//
// Invariants: a returned Solution always meets every budget within
// FeasibilityTol and respects ties and fixed layers; its Objective and
// Costs are summed from the chosen options of the original Problem in layer
// order; Optimal means no configuration is better by more than
// OptimalityTol relative; otherwise Gap is a proven relative gap. Results
// are deterministic: the same Problem gives the same Solution (no map order
// or randomness reaches the result), apart from which solution is found
// first when a time limit cuts the search. Malformed problems give errors
// wrapping ErrInvalid that name the layer; budgets no configuration meets
// give an *InfeasibleError (wrapping ErrInfeasible) stating the smallest
// cost achievable for each budget. The package never prints.
//
// Building with lp_solve needs liblpsolve55-dev and
// CGO_CFLAGS=-I/usr/include/lpsolve CGO_LDFLAGS="-llpsolve55 -lm -ldl -lcolamd";
// with CGO_ENABLED=0 only BranchAndBound is built.
package ilp
