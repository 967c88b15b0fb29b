"""Every public suite's reader on small files written here in the published formats, and its bad input as one clear
line (``InputError``) naming the field."""

from __future__ import annotations

import json
import pickle

import pytest

from layoutguide.bench.public import SUITES, load_suite
from layoutguide.errors import InputError

MIG_YAML = """\
a photo of a black airplane and a black airplane:
  a black airplane:
  - - 0.39
    - 0.27
    - 1.0
    - 0.68
  - - 0.41
    - 0.38
    - 0.68
    - 0.54
  coco_id: '6'
a photo of a red apple and a blue orange and a green teddy bear:
  a red apple:
  - [0.0, 0.0, 0.5, 0.5]
  a blue orange:
  - [0.5, 0.5, 1.0, 1.0]
  a green teddy bear:
  - [0.1, 0.6, 0.3, 0.9]
  coco_id: '7'
"""


def test_coco_mig_yaml_and_json_give_the_same_entries(tmp_path):
    (tmp_path / "mig.yaml").write_text(MIG_YAML)
    from_yaml = load_suite("coco-mig", tmp_path / "mig.yaml")
    assert [e.level for e in from_yaml.entries] == ["L2", "L3"]
    assert from_yaml.labels(from_yaml.entries[1]) == ["apple", "orange", "teddy bear"]
    data = {
        str(k): {
            "caption": e.layout.prompt,
            "segment": [{"label": r.phrase, "bbox": list(r.box)} for r in e.layout.regions],
        }
        for k, e in enumerate(from_yaml.entries)
    }
    (tmp_path / "mig.json").write_text(json.dumps(data))
    from_json = load_suite("coco-mig", tmp_path / "mig.json")
    assert [e.layout for e in from_json.entries] == [e.layout for e in from_yaml.entries]


def write_nsr(tmp_path):
    counting = [
        {"id": 1, "prompt": "two clocks", "num_object": [["clock", 2]], "sub-type": "single-category",
         "object_list": [["clock", [0.1, 0.1, 0.2, 0.2]], ["clock", [0.6, 0.1, 0.2, 0.3]]]},
        {"id": 2, "prompt": "more cats than dogs", "num_object": [["dog", 1], ["cat", 2]], "sub-type": "comparison",
         "object_list": [["dog", [0.0, 0.0, 0.3, 0.3]], ["cat", [0.5, 0.5, 0.2, 0.2]], ["cat", [0.7, 0.1, 0.2, 0.2]]]},
    ]  # fmt: skip
    spatial = [
        {"id": 9, "prompt": "a toilet to the left of a dog", "relation": "left",
         "obj1": ["toilet", [0.0, 0.2, 0.2, 0.3]], "obj2": ["dog", [0.5, 0.5, 0.4, 0.3]]},
    ]  # fmt: skip
    (tmp_path / "counting.val.json").write_text(json.dumps(counting))
    (tmp_path / "spatial.val.json").write_text(json.dumps(spatial))


def test_nsr_boxes_are_xywh_and_levels_are_sub_types(tmp_path):
    write_nsr(tmp_path)
    counting = load_suite("nsr-1k", tmp_path / "counting.val.json")
    assert counting.entries[0].layout.regions[1].box == pytest.approx((0.6, 0.1, 0.8, 0.4))
    assert [e.level for e in counting.entries] == ["counting: single-category", "counting: comparison"]
    spatial = load_suite("nsr-1k", tmp_path / "spatial.val.json")
    assert spatial.entries[0].meta == {"relation": "left"} and spatial.labels(spatial.entries[0]) == ["toilet", "dog"]


def write_refocus_folder(root, size_rows: int = 3):
    """Attention Refocusing's data_evaluate_LLM layout: prompts CSVs and GPT-4 box pickles (512 px xyxy)."""
    (root / "HRS").mkdir(parents=True)
    (root / "gpt_generated_box").mkdir()
    (root / "gpt_generated_box_drawbench").mkdir()
    (root / "HRS" / "counting_prompts.csv").write_text(
        "vanilla_prompt,n1,obj1,n2,obj2,synthetic_prompt\n"
        "x,2,cat,1,dog,two cats and a dog\nx,1,car,0,,one car\nx,3,apple,0,,three apples\n"
    )
    counting = {
        "two cats and a dog": (["cat", "cat", "dog"], [[0, 0, 100, 100], [200, 0, 300, 100], [0, 300, 200, 500]]),
        "one car": (["car"], [[100, 100, 400, 400]]),
        "three apples": (["apple"] * 3, [[0, 0, 50, 50], [100, 0, 150, 50], [200, 0, 250, 50]]),
    }
    (root / "gpt_generated_box" / "counting.p").write_bytes(pickle.dumps(counting))
    rows = ["a cat on the left of a dog.,cat,dog,,,on the left of,,", "a car above a chair.,car,chair,,,above,,"]
    rows.append("a cup between a bowl and a vase.,cup,bowl,vase,,between,,")
    (root / "HRS" / "spatial_compositions_prompts.csv").write_text(
        "meta_prompt,obj1,obj2,obj3,obj4,rel1,rel2,synthetic_prompt\n" + "\n".join(rows) + "\n"
    )
    spatial = {
        "a cat on the left of a dog.": (["cat", "dog"], [[0, 0, 200, 200], [300, 0, 500, 200]]),
        "a car above a chair.": (["car", "chair"], [[0, 0, 200, 200], [0, 300, 200, 500]]),
    }  # the third prompt has no boxes: like HRS's size file, the box file is incomplete
    (root / "gpt_generated_box" / "spatial.p").write_bytes(pickle.dumps(spatial))
    (root / "HRS" / "size_compositions_prompts.csv").write_text(
        "meta_prompt,obj1,obj2,obj3,obj4,rel1,rel2,synthetic_prompt\n"
        + "\n".join(f"a bus larger than a cup {i}.,bus,cup,,,larger,," for i in range(size_rows))
        + "\n"
    )
    size = {
        f"a bus larger than a cup {i}.": (["bus", "cup"], [[0, 0, 400, 400], [420, 420, 500, 500]]) for i in range(2)
    }
    (root / "gpt_generated_box" / "size.p").write_bytes(pickle.dumps(size))
    colour = {
        "a red car and a blue bird": (["red car", "blue bird"], [[0, 0, 200, 200], [300, 300, 500, 500]]),
        "a green apple": (["apple"], [[100, 100, 300, 300]]),  # the colour word is in the prompt only
        "a dog": (["dog"], [[0, 0, 100, 100]]),  # no colour at all: left out, and said
    }
    (root / "gpt_generated_box" / "color.p").write_bytes(pickle.dumps(colour))
    draw = {"A car on the left of a bus.": (["car", "bus"], [[0, 0, 200, 200], [300, 0, 500, 200]])}
    (root / "gpt_generated_box_drawbench" / "spatial.p").write_bytes(pickle.dumps(draw))
    (root / "gpt_generated_box_drawbench" / "counting.p").write_bytes(pickle.dumps(counting))


def test_hrs_reads_csv_truth_and_gpt_boxes_and_reports_missing_prompts(tmp_path):
    write_refocus_folder(tmp_path, size_rows=3)
    counting = load_suite("hrs-counting", tmp_path)
    assert [e.meta["counts"] for e in counting.entries] == [[["cat", 2], ["dog", 1]], [["car", 1]], [["apple", 3]]]
    assert counting.entries[1].layout.regions[0].box == pytest.approx((100 / 512, 100 / 512, 400 / 512, 400 / 512))
    assert [e.level for e in counting.entries] == ["easy", "medium", "hard"]
    spatial = load_suite("hrs-spatial", tmp_path)
    assert len(spatial) == 2 and any("2 of 3" in d for d in spatial.differences("owlv2"))
    size = load_suite("hrs-size", tmp_path)
    assert any("2 of 3" in d and "lack 1" in d for d in size.differences("owlv2"))
    colour = load_suite("hrs-colour", tmp_path)
    assert [e.meta["coloured"] for e in colour.entries] == [[("red", "car"), ("blue", "bird")], [("green", "apple")]]
    assert any("1 colour prompts skipped" in d for d in colour.differences("owlv2"))
    draw = load_suite("drawbench-spatial", tmp_path)
    assert draw.entries[0].meta == {"objects": ["car", "bus"], "relations": ["on the left of"]}
    assert load_suite("drawbench-counting", tmp_path).entries[0].meta["counts"] == [["cat", 2], ["dog", 1]]


def test_a_box_pickle_naming_a_class_is_refused(tmp_path):
    write_refocus_folder(tmp_path)

    class Hostile:
        def __reduce__(self):
            return (print, ("ran",))

    (tmp_path / "gpt_generated_box" / "counting.p").write_bytes(pickle.dumps({"x": Hostile()}))
    with pytest.raises(InputError, match="only plain lists"):
        load_suite("hrs-counting", tmp_path)


def coco_file(path, *, captions: bool = True, crowd: bool = False):
    data = {
        "images": [{"id": 5, "width": 200, "height": 100}, {"id": 6, "width": 100, "height": 100}],
        "categories": [{"id": 1, "name": "dog"}, {"id": 2, "name": "cat"}],
        "annotations": [
            {"id": 1, "image_id": 5, "category_id": 1, "bbox": [0, 0, 100, 50], "area": 5000, "iscrowd": 0,
             "segmentation": [[0, 0, 100, 0, 100, 50, 0, 50]]},
            {"id": 2, "image_id": 6, "category_id": 2, "bbox": [50, 50, 50, 50], "area": 2500, "iscrowd": int(crowd),
             "segmentation": [[50, 50, 100, 50, 100, 100, 50, 100]]},
        ],
    }  # fmt: skip
    path.write_text(json.dumps(data))
    if captions:
        caps = {"annotations": [{"image_id": 5, "caption": "A dog on grass."}, {"image_id": 6, "caption": "A cat."}]}
        (path.parent / path.name.replace("instances", "captions")).write_text(json.dumps(caps))


def test_coco_layouts_are_relative_with_captions_as_prompts(tmp_path):
    coco_file(tmp_path / "instances_val2017.json")
    suite = load_suite("coco", tmp_path / "instances_val2017.json")
    assert [e.layout.prompt for e in suite.entries] == ["A dog on grass.", "A cat."]
    assert suite.entries[0].layout.regions[0].box == pytest.approx((0.0, 0.0, 0.5, 0.5))
    coco_file(tmp_path / "instances_val2017.json", captions=False, crowd=True)
    (tmp_path / "captions_val2017.json").unlink()
    suite = load_suite("coco", tmp_path / "instances_val2017.json")
    assert len(suite) == 1 and suite.entries[0].layout.prompt == "a photo of dog"  # the crowd-only image is left out


def test_layoutbench_reads_each_split_folder(tmp_path):
    for split in ("number_few", "size_tiny"):
        (tmp_path / split).mkdir()
        coco_file(tmp_path / split / f"{split}_val_bounding_boxes.json", captions=False)
    suite = load_suite("layoutbench", tmp_path)
    assert [e.level for e in suite.entries] == ["number_few"] * 2 + ["size_tiny"] * 2


@pytest.mark.parametrize(
    "name, content, says",
    [
        ("coco-mig", "[1, 2]", "data:"),
        (
            "coco-mig",
            '{"0": {"caption": "a b", "segment": [{"label": "red", "bbox": [0, 0, 1, 1]}]}}',
            "COLOUR OBJECT",
        ),
        (
            "coco-mig",
            '{"0": {"caption": "x", "segment": [{"label": "red box", "bbox": [0.5, 0, 0.2, 1]}]}}',
            "no area",
        ),
        ("nsr-1k", '[{"id": 1, "prompt": "x"}]', "NSR-1K"),
        ("nsr-1k", "not json", "not a readable JSON"),
        ("coco", '{"images": []}', "COCO annotation"),
    ],
)
def test_bad_suite_files_are_one_clear_line(tmp_path, name, content, says):
    path = tmp_path / "file.json"
    path.write_text(content)
    with pytest.raises(InputError, match=says) as info:
        load_suite(name, path)
    assert "\n" not in str(info.value)


def test_unknown_suite_missing_data_and_matching_elsewhere_are_refused(tmp_path):
    with pytest.raises(InputError, match="suite: unknown"):
        load_suite("geneval", tmp_path)
    with pytest.raises(InputError, match="does not exist"):
        load_suite("nsr-1k", tmp_path / "nope.json")
    write_nsr(tmp_path)
    with pytest.raises(InputError, match="matching"):
        load_suite("nsr-1k", tmp_path / "counting.val.json", matching="one-to-one")
    assert "coco-mig" in SUITES and "hrs-size" in SUITES
