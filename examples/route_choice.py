"""Route choice: the tool with the lower MSE makes the worse decision.

Leave at 08:30, be at work by 09:00: a route is good only if it takes <= 30 minutes.
Run: python examples/route_choice.py   (the full experiment: python -m experiments.route_choice)
"""

import jax.numpy as jnp

import bdl
from bdl import decisions, metrics

routes = ["city", "highway", "forest"]
truth = jnp.array([32.0, 25.0, 35.0])  # minutes, known only afterwards

tools = {
    "A": bdl.Predictive.point([35.0, 25.0, 43.0]),  # worse MSE, never under-estimates
    "B": bdl.Predictive.point([28.0, 32.0, 35.0]),  # better MSE
    "C": bdl.Predictive.gaussian([25.0, 27.0, 37.0], [8.0, 2.0, 4.0]),  # with uncertainty
}
# pick ONE of the routes (the predictive's last batch axis) ...
on_time = decisions.select(decisions.threshold(30.0))  # ... by u = 1[T <= 30]
fastest = decisions.select(decisions.linear(-1.0))  # ... by u = -T: "shortest expected time"

for name, pred in tools.items():
    mse = metrics.evaluate(pred, truth)["mse"]
    p = decisions.expected_utility(pred, on_time)  # P(T <= 30) per route
    pick = routes[int(decisions.choose(pred, on_time))]
    naive = routes[int(decisions.choose(pred, fastest))]
    result = decisions.evaluate(pred, truth, on_time)
    print(
        f"Tool {name}: MSE {mse:5.2f} | fastest expected: {naive:<7} | "
        f"P(T<=30) = {jnp.round(p, 3)} -> {pick:<7} | "
        f"{'on time' if result['realised_utility'] == 1 else 'late'} (regret {result['regret']:g})"
    )
