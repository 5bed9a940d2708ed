"""GeoJSON for the geo comparison (expression op 8, the client's CmpGeo), as the server does it.

The server (as/src/geospatial, on Google's S2 library) reads a GeoJSON text into either a
point or a region: an "AeroCircle" ([[lng, lat], radius in metres] on an earth of radius
6371000 m), a "Polygon" (loops of [lng, lat], the first and last equal; later loops are
holes), a "MultiPolygon" (any of its polygons), or any of these as a "Feature"'s
geometry. Edges are great-circle arcs. `matches(candidate, query)` is
as_geojson_match(strict): a point candidate against a region query is "point within
region"; a region candidate against a point query is "region contains point"; two points
or two regions never match.

Points are unit vectors on the sphere. Where S2 snaps a point to the centre of its
level-30 cell (about a centimetre) we keep the exact point.
"""

import json
import math
import struct

EARTH_RADIUS_M = 6371000.0  # the namespace default, geo2dsphere-within-earth-radius-meters
_TINY = 1e-12  # radians: how far off an edge the inside reference point sits (~6 µm)

Vec = tuple[float, float, float]


class GeoError(ValueError):
    """Text the server would not take as GeoJSON."""


# -------------------------------------------------------------------- vectors

def _dot(a: Vec, b: Vec) -> float:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _cross(a: Vec, b: Vec) -> Vec:
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def _add(a: Vec, b: Vec, scale: float = 1.0) -> Vec:
    """a + scale * b"""
    return (a[0] + scale * b[0], a[1] + scale * b[1], a[2] + scale * b[2])


def _unit(a: Vec) -> Vec:
    n = math.sqrt(_dot(a, a))
    return (a[0] / n, a[1] / n, a[2] / n)


def _angle(a: Vec, b: Vec) -> float:
    """The angle between two unit vectors (atan2 stays accurate for tiny angles)."""
    return math.atan2(math.sqrt(_dot(c := _cross(a, b), c)), _dot(a, b))


# -------------------------------------------------------------------- shapes

class Circle:
    def __init__(self, center: Vec, radius_m: float):
        self.center = center
        self.angle = radius_m / EARTH_RADIUS_M

    def contains(self, p: Vec) -> bool:
        return _angle(self.center, p) <= self.angle


class Loop:
    """A closed ring of vertices; inside is the smaller of the two parts of the sphere it
    bounds (S2Loop::Normalize), whichever way round the vertices were given."""

    def __init__(self, vertices: list[Vec]):
        self.vertices = vertices
        self.edges = list(zip(vertices, vertices[1:] + vertices[:1], strict=True))
        a, b = self.edges[0]
        # a x b points to the left of edge a->b: a point just left of its middle is left of the loop
        self.left_point = _unit(_add(_unit(_add(a, b)), _unit(_cross(a, b)), _TINY))
        self.left_is_inside = self._left_area() <= 2 * math.pi

    def _left_area(self) -> float:
        """Area of the part to the left of the edges (Girard: angle sum - (n - 2) pi)."""
        n, total = len(self.vertices), 0.0
        for i, v in enumerate(self.vertices):
            ahead = _tangent(v, self.vertices[(i + 1) % n])
            back = _tangent(v, self.vertices[i - 1])
            # the left-hand corner: turning counter-clockwise (seen from outside) from ahead to back
            total += math.atan2(_dot(_cross(ahead, back), v), _dot(ahead, back)) % (2 * math.pi)
        return total - (n - 2) * math.pi

    def contains(self, p: Vec) -> bool:
        on_left = _crossings(self.edges, self.left_point, p) % 2 == 0
        return on_left == self.left_is_inside


class Polygon:
    """Loops, the first the shell and the rest holes: inside an odd number of them (S2Polygon)."""

    def __init__(self, loops: list[Loop]):
        self.loops = loops

    def contains(self, p: Vec) -> bool:
        return sum(loop.contains(p) for loop in self.loops) % 2 == 1


class MultiPolygon:
    def __init__(self, polygons: list[Polygon]):
        self.polygons = polygons

    def contains(self, p: Vec) -> bool:
        return any(polygon.contains(p) for polygon in self.polygons)


def _tangent(at: Vec, toward: Vec) -> Vec:
    """The direction of the great-circle arc from `at` toward `toward`, in the plane tangent at `at`."""
    return _unit(_add(toward, at, -_dot(at, toward)))


def _arcs_cross(a: Vec, b: Vec, c: Vec, d: Vec) -> bool:
    """Whether arcs a-b and c-d cross: triangles acb, cbd, bda and dac all turn the same way."""
    ab, cd = _cross(a, b), _cross(c, d)
    acb, bda = -_dot(ab, c), _dot(ab, d)
    if acb * bda <= 0:
        return False
    cbd, dac = -_dot(cd, b), _dot(cd, a)
    return acb * cbd > 0 and acb * dac > 0


def _crossings(edges: list[tuple[Vec, Vec]], start: Vec, end: Vec) -> int:
    """How many edges the shorter great-circle path from start to end crosses. The path
    goes through a midpoint (two arcs under a half turn each), and when the two points are
    antipodal, through any point a quarter turn from both."""
    mid = _add(start, end)
    if _dot(mid, mid) < 1e-20:
        helper = (1.0, 0.0, 0.0) if abs(start[0]) < 0.9 else (0.0, 1.0, 0.0)
        mid = _cross(start, helper)
    mid = _unit(mid)
    return sum(_arcs_cross(start, mid, c, d) + _arcs_cross(mid, end, c, d) for c, d in edges)


# -------------------------------------------------------------------- GeoJSON text

def _number(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise GeoError(f"{what} not numeric value")
    return float(value)


def _point(coord) -> Vec:
    if not isinstance(coord, list) or len(coord) < 2:
        raise GeoError("point coordinates are not an array of two numbers")
    lng, lat = _number(coord[0], "longitude"), _number(coord[1], "latitude")
    if not (abs(lat) <= 90 and abs(lng) <= 180):
        raise GeoError("invalid latitude-longitude")
    lat, lng = math.radians(lat), math.radians(lng)
    return (math.cos(lat) * math.cos(lng), math.cos(lat) * math.sin(lng), math.sin(lat))


def _loop(vertices) -> Loop:
    if not isinstance(vertices, list):
        raise GeoError("vertices are not array")
    points: list[Vec] = []
    for coord in vertices:
        p = _point(coord)
        if not points or points[-1] != p:  # repeated vertices are dropped
            points.append(p)
    if len(points) < 4:
        raise GeoError("loop contains less than 4 points")
    if points[0] != points[-1]:
        raise GeoError("loop not closed")
    return Loop(points[:-1])


def _polygon(loops) -> Polygon:
    if not isinstance(loops, list):
        raise GeoError("polygon body is not array")
    return Polygon([_loop(vertices) for vertices in loops])


def _circle(coord) -> Circle:
    if not isinstance(coord, list) or len(coord) != 2:
        raise GeoError("malformed circle coordinate array")
    return Circle(_point(coord[0]), _number(coord[1], "radius"))


def _multipolygon(coord) -> MultiPolygon:
    if not isinstance(coord, list):
        raise GeoError("coordinates are not array")
    return MultiPolygon([_polygon(polygon) for polygon in coord])


_GEOMETRIES = {"Point": _point, "Polygon": _polygon, "MultiPolygon": _multipolygon, "AeroCircle": _circle}


def parse(text: bytes | str):
    """A point (a unit vector) or a region (something with .contains(point))."""
    try:
        doc = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise GeoError(f"failed to parse geojson: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("type"), str):
        raise GeoError("geojson is not an object with a string type")
    if doc["type"] == "Feature":
        doc = doc.get("geometry")
        if not isinstance(doc, dict) or not isinstance(doc.get("type"), str):
            raise GeoError("feature geometry is not an object with a string type")
    build = _GEOMETRIES.get(doc["type"])
    if build is None:
        raise GeoError(f"unknown geometry type: {doc['type']}")
    if "coordinates" not in doc:
        raise GeoError("missing coordinates")
    return build(doc["coordinates"])


def is_point(shape) -> bool:
    return isinstance(shape, tuple)


def matches(candidate, query) -> bool:
    """as_geojson_match, strict: a point within a region, or a region containing a point."""
    if is_point(candidate) == is_point(query):
        return False
    point, region = (candidate, query) if is_point(candidate) else (query, candidate)
    return region.contains(point)


_CELL_COUNT = struct.Struct(">H")


def json_of_particle(data: bytes) -> bytes:
    """The GeoJSON text of a GeoJSON particle: u8 flags, u16 cell count, the cell ids, the text."""
    if len(data) < 3:
        raise GeoError("GeoJSON particle shorter than its header")
    (cells,) = _CELL_COUNT.unpack_from(data, 1)
    return data[3 + 8 * cells:]
