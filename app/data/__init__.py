"""The Data tab: open a dataset, find and fix its problems, see what each row trains."""
