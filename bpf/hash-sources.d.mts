export declare const BPF_SOURCES: string[];
export declare function hashBpfSources(dir?: string): string;
