# Fetch, check and prepare every data set once into data/<name>/ (headstart.data.prepare), and
# the manifest of where each came from.


for _name in DATASETS:

    rule:
        name:
            f"data_{_name}"
        input:
            code=code("prepare_data"),
        output:
            data_files(_name),
            provenance(_name),
        params:
            dataset=_name,
            **data_settings(_name),
        conda:
            "../envs/headstart.yaml"
        log:
            f"logs/data/{_name}.log",
        script:
            "../scripts/prepare_data.py"


rule data_manifest:
    input:
        provenance=[provenance(name) for name in config["datasets"]],
        code=code("data_manifest"),
    output:
        report("results/paper/data.md", caption="../report/data.rst", category="data"),
    conda:
        "../envs/headstart.yaml"
    log:
        "logs/report/data_manifest.log",
    script:
        "../scripts/data_manifest.py"
