"""Customer segmentation: feature sets, MLlib clustering with k chosen from the data,
profiles and names, quality scores and stable labels over time (docs/segments.md)."""

from custseg.segment.kmeans import Centre, KPoint, SegmentFit, fit_segments
from custseg.segment.naming import assign_names, name_segments, parse_rules
from custseg.segment.profile import segment_profiles, value_class_of, with_value_class
from custseg.segment.quality import adjusted_rand_index, ari_from_contingency, response_rates
from custseg.segment.settings import SegmentSettings, check_segment_conf
from custseg.segment.stability import PreviousSegment, match_segments, migration_matrix

__all__ = [
    "Centre",
    "KPoint",
    "PreviousSegment",
    "SegmentFit",
    "SegmentSettings",
    "adjusted_rand_index",
    "ari_from_contingency",
    "assign_names",
    "check_segment_conf",
    "fit_segments",
    "match_segments",
    "migration_matrix",
    "name_segments",
    "parse_rules",
    "response_rates",
    "segment_profiles",
    "value_class_of",
    "with_value_class",
]
