# Fetch, check and prepare every data set once into data/<name>/ (see headstart.data).


for _name in DATA_FILES:

    rule:
        name:
            f"data_{_name}"
        output:
            data_files(_name),
            provenance(_name),
        params:
            dataset=_name,
            data_dir=config["data_dir"],
            synthetic=config["synthetic_data"],
            seed=config["seed"],
        conda:
            "../envs/headstart.yaml"
        log:
            f"logs/data/{_name}.log",
        script:
            "../scripts/prepare_data.py"
