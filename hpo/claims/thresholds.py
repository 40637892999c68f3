"""The thresholds every claim's checks compare the numbers with, in one place.

The report prints the numbers beside each verdict and names this file, so a reader who
disagrees with a threshold can change it here and judge the same data again.
"""

from __future__ import annotations

TARGET_ACCURACY = 0.90  # claim 1: "a good validation accuracy" on rings (best runs reach ~0.96)
SAME_ACCURACY = 0.01  # claim 1: "at least as accurate" = final accuracy no more than this lower
VANISH_DECADES = 1.0  # claim 2: a gradient "vanishes" when it falls >= 10x over the depths run
STEADY = 3.0  # claim 3: activation std "steady" when last/first layer is within 3x either way
EXPLODES = 10.0  # claim 3: "explodes" when last/first layer activation std is above 10
SATURATED = 0.9  # claim 3: tanh "saturated" when the last layer's std is >= 0.9 (max 1: +-1)
USABLE_DROP = 0.05  # claim 4: an lr is usable when its accuracy is within 5 points of the best
# claim 4: lrs are a grid of quarter decades, so ratios are 10^(k/4); compared in decades
# with GRID_SLACK for the rounding of the grid values (10^-1.5 is stored as 0.0316).
HIGHER_LR = 0.5  # "higher": at least half a decade (about 3x) higher
ABOUT_10X = 0.25  # "about 10x": within a quarter decade (one grid step) of 10x
GRID_SLACK = 0.01
NARROWING = 0.25  # claim 5: a gap "narrows" when the highest rate cuts it by >= a quarter
BETTER = 0.005  # claim 5: validation accuracy "improves" by at least half a point
