#!/usr/bin/env python3
"""Draw the demo site's occupancy grid (maps/site.pgm + maps/site.yaml, map_server format).

The site: 100 m x 70 m behind a fence; a container yard with stacks (south-west), the truck lane
through the drive-through radiation portal (portal_lane_1 at x = 62 m, y = 30 m, lanes along +x),
the express/mail sorting hall with its conveyor monitor (parcel_line_1 at x = 20 m, y = 45 m) and
the passenger arrival hall (north-east). Device poses match config/site.yaml.
Run from the repository root: python tools/make_site_map.py
"""

import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / 'src'))
from customs_lab.site.layout import write_pgm  # noqa: E402

RESOLUTION = 0.25  # m per cell
WIDTH, HEIGHT = 100.0, 70.0  # m
FREE, OCCUPIED = 254, 0


def main():
    """Draw and write the map."""
    grid = np.full((int(HEIGHT / RESOLUTION), int(WIDTH / RESOLUTION)), FREE, dtype=np.uint8)

    def box(x0, y0, x1, y1, value=OCCUPIED):
        # map coordinates (m) -> rows counted from the bottom
        c0, c1 = int(x0 / RESOLUTION), int(x1 / RESOLUTION)
        r0, r1 = int(y0 / RESOLUTION), int(y1 / RESOLUTION)
        grid[r0:r1, c0:c1] = value

    def walls(x0, y0, x1, y1, thickness=0.5, doors=()):
        box(x0, y0, x1, y0 + thickness)
        box(x0, y1 - thickness, x1, y1)
        box(x0, y0, x0 + thickness, y1)
        box(x1 - thickness, y0, x1, y1)
        for dx0, dy0, dx1, dy1 in doors:
            box(dx0, dy0, dx1, dy1, FREE)

    walls(
        0.0, 0.0, WIDTH, HEIGHT, doors=[(0.0, 27.0, 0.5, 33.0), (WIDTH - 0.5, 27.0, WIDTH, 33.0)]
    )
    for x in range(5, 45, 8):  # container stacks in the yard, 2.5 m x 6.5 m blocks
        for y in range(5, 22, 4):
            box(x, y, x + 6.5, y + 2.5)
    box(61.7, 32.3, 62.3, 33.0)  # portal_lane_1 panel columns either side of the lane
    box(61.7, 27.0, 62.3, 27.7)
    walls(10.0, 38.0, 32.0, 62.0, doors=[(19.0, 38.0, 21.0, 38.5), (19.0, 61.5, 21.0, 62.0)])
    box(19.4, 40.0, 19.6, 60.0)  # conveyor frame beside the belt of parcel_line_1
    walls(66.0, 40.0, 96.0, 64.0, doors=[(66.0, 48.0, 66.5, 52.0)])
    box(75.0, 55.0, 90.0, 56.0)  # baggage carousel in the arrival hall

    out = pathlib.Path('maps')
    out.mkdir(exist_ok=True)
    write_pgm(out / 'site.pgm', np.flipud(grid))  # PGM rows run top to bottom
    (out / 'site.yaml').write_text(
        '# Occupancy grid of the demo site (map_server format); drawn by tools/make_site_map.py.\n'
        'image: site.pgm\n'
        'mode: trinary\n'
        f'resolution: {RESOLUTION}        # m per cell\n'
        'origin: [0.0, 0.0, 0.0]  # x, y (m), yaw (rad) of the lower-left cell in the map frame\n'
        'negate: 0\n'
        'occupied_thresh: 0.65\n'
        'free_thresh: 0.25\n'
    )
    print(f'wrote maps/site.pgm ({grid.shape[1]} x {grid.shape[0]} cells) and maps/site.yaml')


if __name__ == '__main__':
    main()
